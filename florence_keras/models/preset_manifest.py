"""The integrity manifest of a preset directory: the SHA-256 and size of every file, written when it is saved.

`manifest.json` (format version 1):

    {
      "format": "florence_keras.preset_manifest",
      "format_version": 1,
      "algorithm": "sha256",
      "files": {"<path relative to the preset>": {"sha256": "<64 hex digits>", "size": <bytes>},
                ...}
    }

Paths are relative to the preset directory, with `/` separators, sorted;
`manifest.json` itself is not listed. `verify_manifest` re-hashes every listed
file and raises `PresetFileError` naming the first one that is missing or
differs (a single flipped bit changes the SHA-256). The manifest is an integrity
check (disk, copy and download damage, edits by hand), not a signature: whoever
can edit the files can also rewrite the manifest.
"""

import hashlib
import json
import os
import re

from florence_keras.models.preset_files import PresetFileError
from florence_keras.models.preset_files import read_json_object

MANIFEST_FILE = "manifest.json"
FORMAT = "florence_keras.preset_manifest"
FORMAT_VERSION = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 2**20


def file_digest(path):
    """`(sha256 hex, size)` of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as e:
        raise PresetFileError(path, f"is unreadable: {e}") from e
    return digest.hexdigest(), size


def _preset_files(preset_dir):
    """Relative paths (with `/`) of every regular file under `preset_dir` except the manifest."""
    names = []
    for root, dirs, files in os.walk(preset_dir):
        dirs.sort()
        for name in files:
            full = os.path.join(root, name)
            relative = os.path.relpath(full, preset_dir).replace(os.sep, "/")
            if relative == MANIFEST_FILE:
                continue
            if os.path.islink(full) or not os.path.isfile(full):
                raise PresetFileError(full, "is not a regular file; a preset holds only regular files.")
            names.append(relative)
    return sorted(names)


def write_manifest(preset_dir):
    """Hashes every file of `preset_dir` into `manifest.json` (written atomically); returns the manifest dict."""
    files = {}
    for relative in _preset_files(preset_dir):
        sha256, size = file_digest(os.path.join(preset_dir, relative))
        files[relative] = {"sha256": sha256, "size": size}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "algorithm": "sha256", "files": files}
    path = os.path.join(preset_dir, MANIFEST_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return manifest


def _valid_relative_path(relative):
    parts = relative.split("/")
    return (
        bool(relative)
        and not relative.startswith("/")
        and "\\" not in relative
        and "\x00" not in relative
        and all(part not in ("", ".", "..") for part in parts)
    )


def read_manifest(preset_dir):
    """The parsed, checked `manifest.json` of `preset_dir`, or None when there is none."""
    path = os.path.join(preset_dir, MANIFEST_FILE)
    if not os.path.lexists(path):
        return None
    manifest = read_json_object(path)
    if manifest.get("format") != FORMAT:
        raise PresetFileError(path, f"is not a florence_keras preset manifest (format {manifest.get('format')!r}).")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise PresetFileError(
            path, f"has format_version {version!r}; this florence_keras reads version {FORMAT_VERSION}."
        )
    if manifest.get("algorithm") != "sha256":
        raise PresetFileError(path, f"names hash algorithm {manifest.get('algorithm')!r}; only 'sha256' is used.")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise PresetFileError(path, "must list the preset's files under 'files'.")
    for relative, entry in files.items():
        if not _valid_relative_path(relative) or relative == MANIFEST_FILE:
            raise PresetFileError(path, f"lists {relative!r}, which is not a file path inside the preset.")
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or not _HEX64.fullmatch(entry["sha256"])
            or isinstance(entry.get("size"), bool)
            or not isinstance(entry.get("size"), int)
            or entry["size"] < 0
        ):
            raise PresetFileError(path, f"has an invalid entry for {relative!r}: {entry!r}"[:500])
    return manifest


def verify_manifest(preset_dir):
    """Checks every file listed in `manifest.json` against its size and SHA-256.

    Returns:
        The set of verified relative paths, or None when the preset has no manifest.

    Raises:
        PresetFileError: naming the manifest (damaged) or the first listed file
            that is missing or differs from what was saved.
    """
    manifest = read_manifest(preset_dir)
    if manifest is None:
        return None
    for relative, entry in sorted(manifest["files"].items()):
        full = os.path.join(preset_dir, *relative.split("/"))
        if not os.path.lexists(full):
            raise PresetFileError(full, f"is listed in {MANIFEST_FILE} but missing.")
        # A link to a regular file is read through (Bazel runfiles and other symlink farms are links); its content is
        # checked against the recorded hash below. Anything else (directories, FIFOs, devices) is never opened.
        if not os.path.isfile(full):
            raise PresetFileError(full, "is not a regular file.")
        size = os.path.getsize(full)
        if size != entry["size"]:
            raise PresetFileError(
                full, f"changed since the preset was saved (corrupted or modified): {size} bytes, "
                f"{MANIFEST_FILE} records {entry['size']}."
            )
        sha256, _ = file_digest(full)
        if sha256 != entry["sha256"]:
            raise PresetFileError(
                full, f"changed since the preset was saved (corrupted or modified): SHA-256 {sha256}, "
                f"{MANIFEST_FILE} records {entry['sha256']}."
            )
    return set(manifest["files"])

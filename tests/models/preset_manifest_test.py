"""The preset manifest: every file's SHA-256 and size, and a verification that names the file that changed."""

import hashlib
import json
import os
import re

import pytest

from florence_keras.models import preset_manifest
from florence_keras.models.preset_files import PresetFileError


@pytest.fixture
def preset_dir(tmp_path):
    """A directory with the shape of a preset: JSON files, a binary file, a nested asset."""
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "model.weights.h5").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "assets" / "tokenizer").mkdir(parents=True)
    (tmp_path / "assets" / "tokenizer" / "merges.txt").write_text("a b\n")
    return tmp_path


def test_manifest_lists_every_file_with_its_sha256_and_size(preset_dir):
    manifest = preset_manifest.write_manifest(str(preset_dir))
    on_disk = json.loads((preset_dir / "manifest.json").read_text())
    assert on_disk == manifest
    assert on_disk["format"] == "florence_keras.preset_manifest" and on_disk["format_version"] == 1
    expected = {}
    for name in ("config.json", "model.weights.h5", "assets/tokenizer/merges.txt"):
        data = (preset_dir / name).read_bytes()
        expected[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert on_disk["files"] == expected  # the manifest itself is not listed
    assert preset_manifest.verify_manifest(str(preset_dir)) == set(expected)


@pytest.mark.parametrize("name", ["config.json", "model.weights.h5", "assets/tokenizer/merges.txt"])
def test_one_flipped_bit_in_any_file_is_named(preset_dir, name):
    preset_manifest.write_manifest(str(preset_dir))
    path = preset_dir / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(PresetFileError, match=f"{name}': changed since the preset was saved .*SHA-256") as error:
        preset_manifest.verify_manifest(str(preset_dir))
    assert error.value.path == str(path)


def test_a_file_of_another_size_or_a_missing_file_is_named(preset_dir):
    preset_manifest.write_manifest(str(preset_dir))
    (preset_dir / "config.json").write_text('{"a": 12}')
    with pytest.raises(PresetFileError, match="config.json': changed since .*9 bytes, manifest.json records 8"):
        preset_manifest.verify_manifest(str(preset_dir))
    os.remove(preset_dir / "config.json")
    with pytest.raises(PresetFileError, match="config.json': is listed in manifest.json but missing"):
        preset_manifest.verify_manifest(str(preset_dir))


def test_no_manifest_is_reported_as_none(preset_dir):
    assert preset_manifest.verify_manifest(str(preset_dir)) is None


@pytest.mark.parametrize("edit, message", [
    (lambda m: "not an object", "must hold a JSON object"),
    (lambda m: dict(m, format_version=2), "format_version 2; this florence_keras reads version 1"),
    (lambda m: dict(m, format="other"), "is not a florence_keras preset manifest"),
    (lambda m: dict(m, algorithm="md5"), "only 'sha256'"),
    (lambda m: dict(m, files={"../outside.json": m["files"]["config.json"]}), "'../outside.json', which is not"),
    (lambda m: dict(m, files={"/etc/passwd": m["files"]["config.json"]}), "'/etc/passwd', which is not"),
    (lambda m: dict(m, files={"config.json": {"sha256": "00", "size": 8}}), "invalid entry for 'config.json'"),
    (lambda m: dict(m, files={"config.json": {"sha256": "0" * 64, "size": True}}), "invalid entry"),
    (lambda m: dict(m, files={}), "must list the preset's files"),
])
def test_a_damaged_manifest_is_named(preset_dir, edit, message):
    manifest = preset_manifest.write_manifest(str(preset_dir))
    (preset_dir / "manifest.json").write_text(json.dumps(edit(manifest)))
    with pytest.raises(PresetFileError, match=f"manifest.json': .*{message}"):
        preset_manifest.verify_manifest(str(preset_dir))


def test_links_are_refused_when_writing(preset_dir):
    os.symlink("/etc/hostname", preset_dir / "link.json")
    with pytest.raises(PresetFileError, match="link.json': is not a regular file"):
        preset_manifest.write_manifest(str(preset_dir))


def test_links_to_the_saved_files_verify_and_links_elsewhere_are_named(preset_dir, tmp_path_factory):
    """A tree of links to the saved files (Bazel runfiles) verifies; a link to other content is named."""
    preset_manifest.write_manifest(str(preset_dir))
    farm = tmp_path_factory.mktemp("farm")
    for root, _, files in os.walk(preset_dir):
        for name in files:
            source = os.path.join(root, name)
            link = farm / os.path.relpath(source, preset_dir)
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(source, link)
    assert preset_manifest.verify_manifest(str(farm))
    other = tmp_path_factory.mktemp("other") / "other.json"
    other.write_text("{}")
    victim = next(p for p in sorted(farm.rglob("*")) if p.is_symlink() and p.name != "manifest.json")
    victim.unlink()
    os.symlink(other, victim)
    with pytest.raises(PresetFileError, match=re.escape(victim.name) + "': changed since the preset was saved"):
        preset_manifest.verify_manifest(str(farm))

"""Fuzzing of preset directories: `FlorenceCLIP.from_preset` on damaged copies of a tiny saved preset.

Damage (one to three per case) to any file of the layout (`config.json`, `metadata.json`, `task.json`,
`preprocessor.json`, `tokenizer.json`, `image_converter.json`, `model.weights.h5`, `assets/tokenizer/
vocabulary.json`, `assets/tokenizer/merges.txt`, `manifest.json`): deleted, emptied, truncated, bytes mutated,
replaced by random bytes, replaced by a directory, swapped with another file of the preset, or (JSON) one value
anywhere in the document replaced by a hostile JSON value or removed — e.g. a `class_name` naming an unknown or a
`Lambda` class.

Properties (`PresetFileError` is the `ValueError` that names a preset file):
* With the manifest that `save_to_preset` writes: an undamaged preset loads; a damaged one raises
  `PresetFileError` naming a file that was damaged (or, when the manifest itself was damaged, a file of the preset).
* Without a manifest (a preset saved by keras-hub): the preset loads, or raises `PresetFileError` naming a file of
  the preset — the read-site checks (JSON, config schema, tokenizer assets, HDF5) — and no other exception: a
  `TypeError` / `KeyError` / ... escaping here is a bug in florence_keras, not a damaged file.
"""

import json
import os
import re
import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from florence_keras.models import preset_manifest
from florence_keras.models.florence_clip import FlorenceCLIP
from florence_keras.models.preset_files import PresetFileError
from tests.fuzz import fuzz_support
from tests.fuzz.fuzz_support import case_timeout
from tests.fuzz.fuzz_support import fuzz_settings
from tests.fuzz.fuzz_support import nasty_text

FILES = ("config.json", "metadata.json", "task.json", "preprocessor.json", "tokenizer.json",
         "image_converter.json", "model.weights.h5", "assets/tokenizer/vocabulary.json", "assets/tokenizer/merges.txt")
MANIFEST = preset_manifest.MANIFEST_FILE
DAMAGES = ("delete", "empty", "truncate", "mutate", "random", "directory", "swap", "json_value", "json_value",
           "json_value")
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 2**40), st.floats(allow_nan=False), nasty_text(12),
              st.sampled_from(["Lambda", "keras.layers.Lambda", "UnknownLayer", "os.system", "float64", ""])),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(nasty_text(6), children, max_size=3)),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def saved_preset(tiny_clip, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("fuzz_preset") / "preset")
    tiny_clip.save_to_preset(directory)
    return directory


@st.composite
def damage(draw, files=FILES):
    name = draw(st.sampled_from(files))
    kind = draw(st.sampled_from(DAMAGES))
    if kind == "json_value" and not name.endswith(".json"):
        kind = "mutate"
    return name, kind, draw(st.data())


def _json_paths(value, prefix=()):
    """Every path (tuple of keys/indices) into a JSON document."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _json_paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _json_paths(child, prefix + (index,))


def _apply(directory, name, kind, data):
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        return
    if kind == "delete":
        os.remove(path)
    elif kind == "directory":
        os.remove(path)
        os.makedirs(path)
    elif kind == "swap":
        other = os.path.join(directory, data.draw(st.sampled_from([f for f in FILES + (MANIFEST,) if f != name])))
        if os.path.isfile(other):
            shutil.copyfile(other, path)
    else:
        with open(path, "rb") as f:
            content = f.read()
        if kind == "empty":
            content = b""
        elif kind == "truncate":
            content = content[: data.draw(st.integers(0, max(len(content) - 1, 0)))]
        elif kind == "mutate":
            content = data.draw(fuzz_support.mutated(content))
        elif kind == "random":
            content = data.draw(st.binary(max_size=300))
        else:
            try:
                document = json.loads(content)
            except ValueError:  # damaged by an earlier step
                document = None
            paths = list(_json_paths(document))
            target = data.draw(st.sampled_from(paths[1:] or paths))
            if not target:
                document = data.draw(json_values)
            else:
                parent = document
                for key in target[:-1]:
                    parent = parent[key]
                if data.draw(st.booleans()) and isinstance(parent, dict):
                    del parent[target[-1]]
                else:
                    parent[target[-1]] = data.draw(json_values)
            content = json.dumps(document).encode()
        with open(path, "wb") as f:
            f.write(content)


def _snapshot(directory):
    """relative path -> bytes (None for a directory) of everything under `directory`."""
    files = {}
    for root, dirs, names in os.walk(directory):
        for name in dirs + names:
            full = os.path.join(root, name)
            relative = os.path.relpath(full, directory).replace(os.sep, "/")
            files[relative] = None if os.path.isdir(full) else open(full, "rb").read()
    return files


def _changed(before, after):
    return {name for name in set(before) | set(after) if before.get(name) != after.get(name)}


def _relative_path(error, directory):
    path = os.path.relpath(error.path, directory).replace(os.sep, "/")
    assert not path.startswith(".."), f"{error} names a path outside the preset"
    assert error.path in str(error)
    return path


def _damaged_copy(saved_preset, tmp_path_factory, damages, keep_manifest):
    directory = str(tmp_path_factory.mktemp("damaged") / "preset")
    shutil.copytree(saved_preset, directory)
    if not keep_manifest:
        os.remove(os.path.join(directory, MANIFEST))
    before = _snapshot(directory)
    for name, kind, data in damages:
        _apply(directory, name, kind, data)
    return directory, _changed(before, _snapshot(directory))


@fuzz_settings(fast=5, share=0.05)
@given(damages=st.lists(damage(FILES + (MANIFEST,)), min_size=1, max_size=3))
def test_damaged_preset_with_manifest_names_the_damaged_file(saved_preset, tmp_path_factory, damages):
    directory, changed = _damaged_copy(saved_preset, tmp_path_factory, damages, keep_manifest=True)
    with case_timeout("preset_dir"):
        try:
            clip = FlorenceCLIP.from_preset(directory)
        except PresetFileError as error:
            fuzz_support.record("preset_dir", "error:manifest")
            named = _relative_path(error, directory)
            if MANIFEST not in changed:  # the manifest vouches for every other file: the culprit is named
                assert any(named == c or c.startswith(named + "/") or named.startswith(c + "/") for c in changed), (
                    f"{error} names {named!r}; damaged: {sorted(changed)}")
            return
    if MANIFEST not in changed:  # (a damaged manifest may stop vouching for a file the loader does not read)
        assert not changed, f"loaded despite damage to {sorted(changed)}"
    assert isinstance(clip, FlorenceCLIP)
    fuzz_support.record("preset_dir", "loaded")


@fuzz_settings(fast=6, share=0.05)
@given(damages=st.lists(damage(), min_size=1, max_size=3))
def test_damaged_preset_without_manifest_loads_or_names_a_preset_file(saved_preset, tmp_path_factory, damages):
    directory, _ = _damaged_copy(saved_preset, tmp_path_factory, damages, keep_manifest=False)
    with case_timeout("preset_dir"):
        try:
            clip = FlorenceCLIP.from_preset(directory)
        except PresetFileError as error:
            fuzz_support.record("preset_dir", f"error:{_relative_path(error, directory)}")
            return
    assert isinstance(clip, FlorenceCLIP)
    fuzz_support.record("preset_dir", "loaded")


DAMAGE_FOUND_BY_FUZZING = [
    # name, kind, what the error says about the file
    ("task.json", "directory", "is not a regular file"),
    ("config.json", "json_list", "must hold a JSON object"),
    ("task.json", "wrong_types", r"image_encoder\.config\.depths\[0\] must be an int"),
    ("assets/tokenizer/merges.txt", "random", "not UTF-8|not a merge rule|no merge rules"),
    ("model.weights.h5", "symbol_table", r"corrupted HDF5"),
]


def _damage_by_hand(directory, name, kind):
    path = os.path.join(directory, name)
    if kind == "directory":
        os.remove(path)
        os.makedirs(path)
    elif kind == "json_list":
        with open(path, "w") as f:
            json.dump([1, 2], f)
    elif kind == "wrong_types":
        with open(path) as f:
            document = json.load(f)
        document["config"]["backbone"]["config"]["image_encoder"]["config"]["depths"] = [{}, 2]
        with open(path, "w") as f:
            json.dump(document, f)
    elif kind == "symbol_table":  # the nightly run's find: h5py raises RuntimeError for a damaged symbol table
        with open(path, "rb") as f:
            content = bytearray(f.read())
        start = content.index(b"SNOD")
        content[start : start + 8] = b"\xff" * 8
        with open(path, "wb") as f:
            f.write(bytes(content))
    else:
        with open(path, "wb") as f:
            f.write(b"\xff\xfe" + os.urandom(198))


@pytest.mark.parametrize("name, kind, message", DAMAGE_FOUND_BY_FUZZING)
def test_damage_found_by_fuzzing_is_named_without_a_manifest(saved_preset, tmp_path, name, kind, message):
    """Each escaped as IsADirectoryError, TypeError, a tf.errors.OpError or (h5py) RuntimeError before the fix."""
    directory = str(tmp_path / "preset")
    shutil.copytree(saved_preset, directory)
    os.remove(os.path.join(directory, MANIFEST))
    _damage_by_hand(directory, name, kind)
    with pytest.raises(PresetFileError, match=re.escape(name) + ".*(" + message + ")"):
        FlorenceCLIP.from_preset(directory)


@pytest.mark.parametrize("name, kind, message", DAMAGE_FOUND_BY_FUZZING)
def test_damage_found_by_fuzzing_is_named_by_the_manifest(saved_preset, tmp_path, name, kind, message):
    directory = str(tmp_path / "preset")
    shutil.copytree(saved_preset, directory)
    _damage_by_hand(directory, name, kind)
    with pytest.raises(PresetFileError, match=re.escape(name) + ".*(changed since the preset was saved|"
                                              "not a regular file)"):
        FlorenceCLIP.from_preset(directory)

"""Fuzzing of preset directories: `FlorenceCLIP.from_preset` on damaged copies of a tiny saved preset.

Damage (one to three per case) to any file of the layout (`config.json`, `metadata.json`, `task.json`,
`preprocessor.json`, `tokenizer.json`, `image_converter.json`, `model.weights.h5`, `assets/tokenizer/
vocabulary.json`, `assets/tokenizer/merges.txt`): deleted, emptied, truncated, bytes mutated, replaced by random
bytes, replaced by a directory, swapped with another file of the preset, or (JSON) one value anywhere in the
document replaced by a hostile JSON value or removed — e.g. a `class_name` naming an unknown or a `Lambda` class.

Property: `from_preset` returns a model or raises `ValueError` (the documented error for a damaged preset).
"""

import json
import os
import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from florence_keras.models.florence_clip import FlorenceCLIP
from tests.fuzz import fuzz_support
from tests.fuzz.fuzz_support import case_timeout
from tests.fuzz.fuzz_support import fuzz_settings
from tests.fuzz.fuzz_support import nasty_text

FILES = ("config.json", "metadata.json", "task.json", "preprocessor.json", "tokenizer.json",
         "image_converter.json", "model.weights.h5", "assets/tokenizer/vocabulary.json", "assets/tokenizer/merges.txt")
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
def damage(draw):
    name = draw(st.sampled_from(FILES))
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
        other = os.path.join(directory, data.draw(st.sampled_from([f for f in FILES if f != name])))
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


@fuzz_settings(fast=6, share=0.05)
@given(damages=st.lists(damage(), min_size=1, max_size=3))
def test_from_preset_loads_or_raises_value_error(saved_preset, tmp_path_factory, damages):
    directory = str(tmp_path_factory.mktemp("damaged") / "preset")
    shutil.copytree(saved_preset, directory)
    for name, kind, data in damages:
        _apply(directory, name, kind, data)
    with case_timeout("preset_dir"):
        try:
            clip = FlorenceCLIP.from_preset(directory)
        except ValueError as error:
            fuzz_support.record("preset_dir", f"error:{type(error).__name__}")
            return
    assert isinstance(clip, FlorenceCLIP)
    fuzz_support.record("preset_dir", "loaded")


@pytest.mark.parametrize("name, kind", [("task.json", "directory"), ("config.json", "json_list"),
                                        ("task.json", "wrong_types"), ("assets/tokenizer/merges.txt", "random"),
                                        ("model.weights.h5", "symbol_table")])
def test_damage_found_by_fuzzing_raises_value_error(saved_preset, tmp_path, name, kind):
    """Each escaped as IsADirectoryError, TypeError, a tf.errors.OpError or (h5py) RuntimeError before the fix."""
    directory = str(tmp_path / "preset")
    shutil.copytree(saved_preset, directory)
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
            f.write(os.urandom(200))
    with pytest.raises(ValueError):
        FlorenceCLIP.from_preset(directory)

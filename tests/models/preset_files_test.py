"""The read sites of a preset's files: each bad file raises `PresetFileError` naming it."""

import json
import os

import h5py
import numpy as np
import pytest

from florence_keras.models import preset_files
from florence_keras.models.preset_files import PresetFileError


@pytest.mark.parametrize("content, message", [
    (b"{not json", "is not valid JSON"),
    (b"\xff\xfe{}", "is not UTF-8 text"),
    (b'{"a": NaN}', "is not valid JSON: NaN is not a JSON number"),
    (b'{"a": ' + b"1" * 5000 + b"}", "is not valid JSON"),  # Python refuses to convert such an integer
    (b"[" * 100_000 + b"]" * 100_000, "is not valid JSON"),  # RecursionError
])
def test_bad_json_is_named(tmp_path, content, message):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(PresetFileError, match=f"config.json': {message}"):
        preset_files.read_json(str(path))


def test_missing_directory_and_non_object_json_are_named(tmp_path):
    with pytest.raises(PresetFileError, match="task.json': is missing"):
        preset_files.read_json(str(tmp_path / "task.json"))
    (tmp_path / "task.json").mkdir()
    with pytest.raises(PresetFileError, match="task.json': is not a regular file"):
        preset_files.read_json(str(tmp_path / "task.json"))
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(PresetFileError, match="list.json': must hold a JSON object; it holds list"):
        preset_files.read_json_object(str(tmp_path / "list.json"))
    assert preset_files.read_json_object(str(_write(tmp_path, "ok.json", {"a": [1]}))) == {"a": [1]}


def _write(tmp_path, name, value):
    path = tmp_path / name
    path.write_text(json.dumps(value) if not isinstance(value, str) else value)
    return path


SPECIAL = ("<|startoftext|>", "<|endoftext|>")
VOCABULARY = {"a": 0, "b": 1, "ab": 2, "<|startoftext|>": 3, "<|endoftext|>": 4}


@pytest.mark.parametrize("vocabulary, message", [
    ({}, "empty vocabulary"),
    (dict(VOCABULARY, c=2), "maps both 'ab' and 'c' to id 2"),
    (dict(VOCABULARY, c=-1), "maps 'c' to -1"),
    (dict(VOCABULARY, c=True), "maps 'c' to True"),
    (dict(VOCABULARY, c="5"), "maps 'c' to '5'"),
    (dict(VOCABULARY, c=2**31), "ids must be ints"),
    ({k: v for k, v in VOCABULARY.items() if k != "<|endoftext|>"}, "lacks the special token '<\\|endoftext\\|>'"),
])
def test_bad_vocabularies_are_named(tmp_path, vocabulary, message):
    path = _write(tmp_path, "vocabulary.json", vocabulary)
    with pytest.raises(PresetFileError, match=f"vocabulary.json': .*{message}"):
        preset_files.read_vocabulary(str(path), required_tokens=SPECIAL)


def test_a_good_vocabulary_and_merges_are_returned_as_the_tokenizer_takes_them(tmp_path):
    vocabulary = preset_files.read_vocabulary(str(_write(tmp_path, "v.json", VOCABULARY)), SPECIAL)
    assert vocabulary == VOCABULARY
    merges = preset_files.read_merges(str(_write(tmp_path, "merges.txt", "#version: 0.2\na b\n\n")), vocabulary)
    assert merges == ["#version: 0.2", "a b"]


@pytest.mark.parametrize("text, message", [
    ("a b c\n", "line 1 is not a merge rule"),
    ("a\n", "line 1 is not a merge rule"),
    ("a b\nx y\n", "line 2 merges a token that is not in the vocabulary"),
    ("a b\na b\n", "line 2 repeats the merge rule"),
    ("b a\n", "line 1 makes a token that is not in the vocabulary"),
    ("\n\n", "holds no merge rules"),
])
def test_bad_merges_are_named(tmp_path, text, message):
    path = _write(tmp_path, "merges.txt", text)
    with pytest.raises(PresetFileError, match=f"merges.txt': {message}"):
        preset_files.read_merges(str(path), VOCABULARY)


def _weights(path, value):
    with h5py.File(path, "w") as f:
        f.create_group("layers").create_dataset("kernel", data=value)


def test_weights_files_are_read_completely(tmp_path):
    good = str(tmp_path / "model.weights.h5")
    _weights(good, np.ones((3, 4), "float32"))
    preset_files.check_weights_file(good)
    data = open(good, "rb").read()
    broken = str(tmp_path / "broken.weights.h5")
    with open(broken, "wb") as f:
        f.write(data[: len(data) // 2])  # truncated: the dataset's bytes are gone
    with pytest.raises(PresetFileError, match="broken.weights.h5': is not a readable weights file"):
        preset_files.check_weights_file(broken)
    garbage = tmp_path / "garbage.weights.h5"
    garbage.write_bytes(b"garbage" * 10)
    with pytest.raises(PresetFileError, match="garbage.weights.h5': is not a readable weights file"):
        preset_files.check_weights_file(str(garbage))
    text = str(tmp_path / "text.weights.h5")
    _weights(text, np.array([b"abc"]))
    with pytest.raises(PresetFileError, match="text.weights.h5': dataset 'layers/kernel' holds .*not numbers"):
        preset_files.check_weights_file(text)
    os.remove(good)
    with pytest.raises(PresetFileError, match="model.weights.h5': is missing"):
        preset_files.check_weights_file(good)

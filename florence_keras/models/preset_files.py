"""The places where a preset directory's files are read; each names its file when the file is bad.

Every reader here turns what is wrong with the *file* (missing, unreadable, not
UTF-8, not JSON, the wrong structure, a damaged HDF5 container) into a
`PresetFileError` naming it. Nothing here catches errors of the code that
consumes the parsed content: those propagate as themselves.
"""

import json
import os

# A config or asset JSON larger than this is not a preset file (the CLIP vocabulary is 1 MB).
MAX_JSON_BYTES = 64 * 2**20
# Token ids must fit the int32 lookup tables of the tokenizer.
MAX_TOKEN_ID = 2**31 - 1
# No weight of a Florence model has more elements (florence_huge's largest has 58M).
MAX_DATASET_ELEMENTS = 2**32


class PresetFileError(ValueError):
    """A preset file is missing, unreadable, damaged, changed since it was saved, or holds an invalid config.

    Attributes:
        path: the file (or directory) at fault.
    """

    def __init__(self, path, message):
        super().__init__(f"Preset file {path!r}: {message}")
        self.path = path


def read_bytes(path, max_bytes=None):
    """The bytes of a regular file; `PresetFileError` when missing, not a file, unreadable or too large."""
    if not os.path.lexists(path):
        raise PresetFileError(path, "is missing.")
    if not os.path.isfile(path):
        raise PresetFileError(path, "is not a regular file.")
    try:
        size = os.path.getsize(path)
        if max_bytes is not None and size > max_bytes:
            raise PresetFileError(path, f"is {size} bytes, more than the {max_bytes} a preset file of its kind may hold.")
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise PresetFileError(path, f"is unreadable: {e}") from e


def parse_json(path, data):
    """Parses JSON `data` (bytes) read from `path`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PresetFileError(path, f"is not UTF-8 text: {e}") from e
    try:
        # Non-finite numbers are not JSON; Python would accept NaN/Infinity.
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, an integer too long to convert, deep nesting
        raise PresetFileError(path, f"is not valid JSON: {e}"[:1000]) from e


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def read_json(path):
    """A JSON file as Python values."""
    return parse_json(path, read_bytes(path, MAX_JSON_BYTES))


def read_json_object(path):
    """A JSON file that must hold an object (dict)."""
    document = read_json(path)
    if not isinstance(document, dict):
        raise PresetFileError(path, f"must hold a JSON object; it holds {type(document).__name__}.")
    return document


def read_vocabulary(path, required_tokens=()):
    """A BPE vocabulary (`vocabulary.json`): a JSON object token -> distinct id in `[0, 2**31)`.

    Args:
        path: the file.
        required_tokens: tokens that must be present (the tokenizer's special tokens).

    Returns:
        dict str -> int.
    """
    vocabulary = read_json_object(path)
    if not vocabulary:
        raise PresetFileError(path, "holds an empty vocabulary.")
    seen = {}
    for token, index in vocabulary.items():
        if not token:
            raise PresetFileError(path, "holds an empty token.")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_TOKEN_ID:
            raise PresetFileError(path, f"maps {token!r} to {index!r}; ids must be ints in [0, {MAX_TOKEN_ID}].")
        if index in seen:
            raise PresetFileError(path, f"maps both {seen[index]!r} and {token!r} to id {index}.")
        seen[index] = token
    for token in required_tokens:
        if token not in vocabulary:
            raise PresetFileError(path, f"lacks the special token {token!r}.")
    return vocabulary


def read_merges(path, vocabulary):
    """BPE merge rules (`merges.txt`): UTF-8 lines `"a b"` (`#version` lines allowed); a, b and ab in the vocabulary.

    Returns:
        list of str, the rules in file order (as keras-hub's tokenizer takes them).
    """
    data = read_bytes(path, MAX_JSON_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PresetFileError(path, f"is not UTF-8 text: {e}") from e
    merges, seen = [], set()
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip()
        if not line:
            continue
        if "#version:" in line.lstrip():
            merges.append(line)
            continue
        pieces = line.split(" ")
        if len(pieces) != 2 or not all(pieces):
            raise PresetFileError(path, f"line {number} is not a merge rule 'a b': {line[:80]!r}")
        if pieces[0] not in vocabulary or pieces[1] not in vocabulary:
            raise PresetFileError(path, f"line {number} merges a token that is not in the vocabulary: {line[:80]!r}")
        if pieces[0] + pieces[1] not in vocabulary:
            raise PresetFileError(path, f"line {number} makes a token that is not in the vocabulary: {line[:80]!r}")
        if line in seen:
            raise PresetFileError(path, f"line {number} repeats the merge rule {line[:80]!r}.")
        seen.add(line)
        merges.append(line)
    if len(merges) == 0:
        raise PresetFileError(path, "holds no merge rules.")
    return merges


def check_weights_file(path):
    """Reads every dataset of a Keras `.weights.h5` file; `PresetFileError` when h5py cannot.

    This finds damage to the HDF5 container (headers, symbol tables, chunk
    indices, datatypes); it cannot see changed numbers inside a dataset, which
    only the preset's manifest can (see `preset_manifest`).
    """
    import h5py

    if not os.path.isfile(path):
        read_bytes(path)  # raises the "missing" / "not a regular file" error
    # h5py raises OSError for most damage, RuntimeError for a damaged symbol table, KeyError / ValueError for
    # objects it cannot open and TypeError for datatypes it cannot map. Only h5py calls on this one file run
    # inside the `try`, so each of these is a read error of the file.
    try:
        with h5py.File(path, "r") as f:
            datasets = []
            f.visititems(lambda name, item: datasets.append(name) if isinstance(item, h5py.Dataset) else None)
            for name in datasets:
                dataset = f[name]
                if dataset.dtype.kind not in "fiub":
                    raise PresetFileError(path, f"dataset {name!r} holds {dataset.dtype}, not numbers.")
                if dataset.size > MAX_DATASET_ELEMENTS:
                    raise PresetFileError(path, f"dataset {name!r} claims shape {dataset.shape}.")
                dataset[()]
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:
        if isinstance(e, PresetFileError):
            raise
        raise PresetFileError(path, f"is not a readable weights file (corrupted HDF5): {e}"[:1000]) from e

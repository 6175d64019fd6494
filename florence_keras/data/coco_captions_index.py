"""Reads COCO captions JSON (`captions_train2017.json` layout): one image-text pair per caption annotation.

`{"images": [{"id", "file_name", ...}], "annotations": [{"image_id", "caption", ...}]}`. Image files are found under
`image_root` (default: the JSON file's directory). JSON syntax errors and structural errors raise `DataFormatError`
naming the file and line (the line of the offending entry, found by walking the text only when an error occurs).
"""

import json
import posixpath
import re
import reprlib

import tensorflow as tf

from florence_keras.data.csv_index import resolve_path
from florence_keras.data.data_format_error import DataFormatError

_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _skip(text, pos):
    return _WHITESPACE.match(text, pos).end()


def entry_line(text, key, index):
    """1-based line where element `index` of the top-level list `text[key]` starts (None if not found).

    Args:
        text: str, a JSON document whose top level is an object.
        key: str, a top-level key holding a list.
        index: int, element index.

    Returns:
        int or None.
    """
    decoder = json.JSONDecoder()
    try:
        pos = _skip(text, 0)
        if text[pos] != "{":
            return None
        pos += 1
        while True:
            pos = _skip(text, pos)
            if text[pos] == "}":
                return None
            name, pos = decoder.raw_decode(text, pos)
            pos = _skip(text, pos) + 1  # ':'
            pos = _skip(text, pos)
            if name == key and text[pos] == "[":
                pos += 1
                for _ in range(index):
                    pos = _skip(text, pos)
                    _, pos = decoder.raw_decode(text, pos)
                    pos = _skip(text, pos) + 1  # ','
                pos = _skip(text, pos)
                return text.count("\n", 0, pos) + 1
            _, pos = decoder.raw_decode(text, pos)
            pos = _skip(text, pos)
            if text[pos] == ",":
                pos += 1
    except (IndexError, json.JSONDecodeError):
        return None


def load_json(path):
    """Loads a JSON file, raising `DataFormatError` with the line and column of a syntax error.

    Args:
        path: str.

    Returns:
        `(document, text)`: the parsed object and the raw text (for `entry_line`).
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataFormatError(path, data.count(b"\n", 0, error.start) + 1, "not valid UTF-8") from error
    try:
        return json.loads(text), text
    except json.JSONDecodeError as error:
        raise DataFormatError(path, error.lineno, f"JSON syntax error: {error.msg} (column {error.colno})") from error
    except ValueError as error:  # e.g. an integer of more than 4,300 digits
        raise DataFormatError(path, None, f"JSON value refused: {error}") from error
    except RecursionError as error:  # arrays/objects nested thousands deep
        raise DataFormatError(path, None, "JSON nested too deeply") from error


def _is_id(value):
    """COCO ids are ints (some exports use str); a list or dict id can't be looked up (unhashable)."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 200
_REPR.maxlevel = 4


def _short(value):
    """A short `repr` of a JSON value (bounded in length and depth, however large or deep the value is)."""
    return _REPR.repr(value)


def read_coco_captions(path, image_root=None):
    """Reads the image-caption pairs of a COCO captions file.

    Args:
        path: str, the JSON file.
        image_root: directory of the images; default: the JSON file's directory.

    Returns:
        `(image_paths, captions)`: two lists of str, one entry per annotation, in annotation order.

    Raises:
        DataFormatError: bad JSON, missing keys, wrong types or an annotation naming an unknown image.
    """
    document, text = load_json(path)
    root = posixpath.dirname(path) if image_root is None else image_root

    def fail(key, index, message):
        raise DataFormatError(path, entry_line(text, key, index), f"{key}[{index}]: {message}")

    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise DataFormatError(path, 1, "expected a JSON object with an 'images' list")
    if not isinstance(document.get("annotations"), list):
        raise DataFormatError(path, 1, "expected a JSON object with an 'annotations' list")
    files = {}
    for index, image in enumerate(document["images"]):
        if not isinstance(image, dict) or not _is_id(image.get("id")) or not isinstance(image.get("file_name"), str):
            fail("images", index, f"needs an int or str 'id' and a str 'file_name'; found {_short(image)}")
        files[image["id"]] = image["file_name"]
    image_paths, captions = [], []
    for index, annotation in enumerate(document["annotations"]):
        if not isinstance(annotation, dict) or not isinstance(annotation.get("caption"), str):
            fail("annotations", index, f"needs a str 'caption'; found {_short(annotation)}")
        if not _is_id(annotation.get("image_id")) or annotation["image_id"] not in files:
            fail("annotations", index, f"image_id {annotation.get('image_id')!r} is not in 'images'")
        image_paths.append(resolve_path(files[annotation["image_id"]], root))
        captions.append(annotation["caption"].strip())
    return image_paths, captions

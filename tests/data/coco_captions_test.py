"""load_caption_data: captions grouped per image; every kind of bad record skipped and counted."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from florence_keras.data.coco_captions import load_caption_data
from florence_keras.data.coco_captions import read_caption_records
from florence_keras.data.data_format_error import DataFormatError


def _write(tmp_path, document):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_grouping_and_every_skip_reason(tmp_path):
    os.makedirs(tmp_path / "img")
    for name, colour in (("a.png", 255), ("b.png", 0)):
        image = np.zeros((20, 30, 3), np.uint8)
        image[..., 0] = colour
        (tmp_path / "img" / name).write_bytes(tf.io.encode_png(image).numpy())
    (tmp_path / "img" / "bad.jpg").write_bytes(b"not an image")
    path = _write(tmp_path, {
        "images": [{"id": 1, "file_name": "img/a.png"}, {"id": "b", "file_name": "img/b.png"},
                   {"id": 3, "file_name": "img/bad.jpg"}, {"id": 4, "file_name": "img/missing.png"},
                   {"id": 5, "file_name": "img/a.png"}, {"id": 1, "file_name": "img/b.png"},
                   {"file_name": "img/a.png"}, "junk"],
        "annotations": [{"image_id": 1, "caption": " A red  image. "}, {"image_id": "b", "caption": "a black one"},
                        {"image_id": 1, "caption": "red"}, {"image_id": 3, "caption": "x"},
                        {"image_id": 4, "caption": "y"}, {"image_id": 9, "caption": "z"},
                        {"image_id": 1, "caption": 7}, {"image_id": 1, "caption": "   "}, ["junk"]],
    })
    data = load_caption_data(path, 8, verbose=False)
    assert data["image_ids"] == [1, "b"]
    assert data["captions"] == [["A red image.", "red"], ["a black one"]]
    assert data["images"].shape == (2, 8, 8, 3) and data["images"].dtype == np.uint8
    assert data["images"][0, ..., 0].min() == 255 and data["images"][1].max() == 0
    reasons = dict(data["skip_counter"].reasons)
    # duplicate id 1, no id, "junk"; caption 7 and ["junk"]; image 9; "   "; image 5 without captions;
    # bad.jpg; missing.png.
    assert reasons == {"bad_image_entry": 3, "bad_annotation": 2, "unknown_image": 1, "empty_caption": 1,
                       "no_caption": 1, "not_an_image": 1, "missing": 1}
    assert data["skip_counter"].count == 10


def test_structural_errors_raise_and_nothing_usable_raises(tmp_path):
    with pytest.raises(DataFormatError, match="annotations"):
        read_caption_records(_write(tmp_path, {"images": []}))
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [,]}')
    with pytest.raises(DataFormatError, match="bad.json:1: JSON syntax error"):
        read_caption_records(str(bad))
    with pytest.raises(ValueError, match="No usable captioned image"):
        load_caption_data(_write(tmp_path, {"images": [{"id": 1, "file_name": "x.png"}],
                                            "annotations": [{"image_id": 1, "caption": "a"}]}), 8, verbose=False)

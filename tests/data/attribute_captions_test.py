"""Attribute caption sets from the built-in attributes file: one true caption per scene and attribute."""

import csv
import os

import pytest

from florence_keras.data.attribute_captions import attribute_caption
from florence_keras.data.attribute_captions import write_attribute_captions

ROWS = [
    {"filepath": "images/train/a.jpg", "shape": "circle", "colour": "orange", "size": "small", "place": "left",
     "count": "1", "caption_style": "short"},
    {"filepath": "images/train/b.jpg", "shape": "square", "colour": "red", "size": "large", "place": "middle",
     "count": "3", "caption_style": "photo"},
    {"filepath": "images/train/c.jpg", "shape": "ellipse", "colour": "blue", "size": "medium", "place": "right",
     "count": "1", "caption_style": "class"},
]


def _write_attributes(directory):
    path = os.path.join(directory, "attributes_train.csv")
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS)
    return path


def _read(path):
    with open(path, encoding="utf-8", newline="") as f:
        return [tuple(row) for row in csv.reader(f)]


def test_captions_name_one_attribute_with_the_right_article():
    assert attribute_caption("shape", ROWS[2]) == "an ellipse"
    assert attribute_caption("colour", ROWS[0]) == "an orange object"
    assert attribute_caption("count", ROWS[1]) == "three objects"
    assert attribute_caption("count", ROWS[0]) == "one object"
    assert attribute_caption("place", ROWS[1]) == "an object in the middle"
    with pytest.raises(ValueError, match="attribute"):
        attribute_caption("size", ROWS[0])


def test_object_attributes_only_for_one_object_scenes_and_count_for_all(tmp_path):
    paths = write_attribute_captions(_write_attributes(str(tmp_path)), ["shape", "count", "place"])
    assert sorted(paths) == ["count", "place", "shape"]
    assert paths["shape"] == os.path.join(str(tmp_path), "attributes_train_shape.csv")
    assert _read(paths["shape"]) == [("filepath", "caption"), ("images/train/a.jpg", "a circle"),
                                     ("images/train/c.jpg", "an ellipse")]
    assert _read(paths["count"])[1:] == [("images/train/a.jpg", "one object"), ("images/train/b.jpg", "three objects"),
                                         ("images/train/c.jpg", "one object")]
    assert _read(paths["place"])[1:] == [("images/train/a.jpg", "an object on the left"),
                                         ("images/train/c.jpg", "an object on the right")]
    every = write_attribute_captions(os.path.join(str(tmp_path), "attributes_train.csv"), ["colour"],
                                     single_object_attributes=())
    assert [row[1] for row in _read(every["colour"])[1:]] == ["an orange object", "a red object", "a blue object"]


def test_written_elsewhere_the_image_paths_are_absolute(tmp_path):
    source = _write_attributes(str(tmp_path))
    paths = write_attribute_captions(source, ["colour"], out_dir=str(tmp_path / "elsewhere"))
    rows = _read(paths["colour"])[1:]
    assert rows[0] == (os.path.join(str(tmp_path), "images/train/a.jpg"), "an orange object")

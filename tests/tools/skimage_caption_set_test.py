"""tools/skimage_caption_set.py: a real-image CSV set with disjoint train / test pixels, and its scorer."""

import csv
import json
import os

import numpy as np
from PIL import Image

from tools import skimage_caption_set


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_crops_stay_inside_their_columns():
    # Each pixel holds its own column index, so a crop shows which columns it came from.
    image = np.repeat(np.arange(200, dtype=np.uint8)[None, :, None], 120, axis=0).repeat(3, axis=2)
    rng = np.random.default_rng(0)
    for columns in ((0, 140), (140, 200)):
        for crop in skimage_caption_set._crops(image, 20, 16, rng, columns):
            assert crop.shape == (16, 16, 3)
            assert columns[0] <= crop.min() and crop.max() < columns[1]


def test_build_writes_captioned_crops_of_every_class(tmp_path):
    paths = skimage_caption_set.build(str(tmp_path), train_per_class=3, test_per_class=2, size=32, seed=1)
    classes = paths["classes"]
    assert len(classes) == len(skimage_caption_set.SOURCES) + 1 and classes[-1] == skimage_caption_set.FACES
    train, test, labels = _rows(paths["train"]), _rows(paths["test"]), _rows(paths["test_labels"])
    objects = len(skimage_caption_set.SOURCES)
    assert len(train) == 3 * objects + 160 and len(test) == 2 * objects + 40
    assert [row["filepath"] for row in labels] == [row["filepath"] for row in test]
    for row, label in zip(test, labels):
        assert label["label"] in classes and label["label"] in row["caption"]
    assert not {row["filepath"] for row in train} & {row["filepath"] for row in test}
    for row in train[:5] + test[-5:]:
        with Image.open(os.path.join(tmp_path, row["filepath"])) as image:
            assert image.size == (32, 32) and image.mode == "RGB"
    allowed = {template.format(name) for template in skimage_caption_set.CAPTION_TEMPLATES for name in classes}
    assert {row["caption"] for row in train + test} <= allowed
    with open(os.path.join(tmp_path, "classes.json"), encoding="utf-8") as f:
        info = json.load(f)
    assert info["classes"] == classes and info["counts"] == {"train": len(train), "test": len(test)}

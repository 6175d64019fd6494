"""Fusion pretraining data: captions CSV grouped per image with bad rows counted, COCO JSON, the batch stream."""

import json

import cv2
import numpy as np
import pytest

from florence_keras.data.fusion_pretraining_data import caption_pairs
from florence_keras.data.fusion_pretraining_data import fusion_pretraining_dataset
from florence_keras.data.fusion_pretraining_data import load_image_captions


def _images(root, count):
    rng = np.random.default_rng(0)
    for i in range(count):
        cv2.imwrite(str(root / f"{i}.png"), rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))


def test_csv_grouped_per_image_and_bad_rows_counted(tmp_path):
    _images(tmp_path, 3)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "c.csv").write_text("filepath,caption\n0.png,a red circle\n1.png,a star\n0.png,  two   objects \n"
                                    "2.png,\nmissing.png,gone\nbad.png,broken\n")
    data = load_image_captions(str(tmp_path / "c.csv"), 16, verbose=False)
    assert data["images"].shape == (2, 16, 16, 3) and data["images"].dtype == np.uint8
    assert data["captions"] == [["a red circle", "two objects"], ["a star"]]
    assert dict(data["skip_counter"].reasons) == {"empty_caption": 1, "missing": 1, "not_an_image": 1}
    image_index, texts = caption_pairs(data["captions"])
    assert image_index.tolist() == [0, 0, 1] and texts == ["a red circle", "two objects", "a star"]
    with pytest.raises(ValueError, match="csv"):
        load_image_captions(str(tmp_path / "c.txt"), 16)


def test_coco_json_and_the_stream(tmp_path):
    _images(tmp_path, 2)
    document = {"images": [{"id": 1, "file_name": "0.png"}, {"id": 2, "file_name": "1.png"}],
                "annotations": [{"image_id": 1, "caption": "one"}, {"image_id": 2, "caption": "two"},
                                {"image_id": 2, "caption": "deux"}]}
    (tmp_path / "c.json").write_text(json.dumps(document))
    data = load_image_captions([str(tmp_path / "c.json")], 16, verbose=False)
    assert data["captions"] == [["one"], ["two", "deux"]]
    image_index, _ = caption_pairs(data["captions"])
    token_ids = np.arange(3 * 5, dtype=np.int32).reshape(3, 5)
    dataset = fusion_pretraining_dataset(data["images"], image_index, token_ids, 3, lambda x: x / 255.0,
                                         repeat=False)
    batch = next(iter(dataset))
    assert set(batch) == {"images", "token_ids", "labels"} and batch["labels"].dtype.name == "int64"
    assert batch["labels"].numpy().tolist() == [0, 1, 1]
    np.testing.assert_array_equal(batch["token_ids"].numpy(), token_ids)
    np.testing.assert_allclose(batch["images"].numpy()[2], data["images"][1] / 255.0, atol=1e-6)

"""COCO instances reading: classes by id, boxes to xyxy, bad records skipped and counted, padding, image_root."""

import json
import os

import numpy as np
import pytest

from florence_keras.data.coco_detection import load_coco_detection


def _write(directory, images, annotations):
    os.makedirs(os.path.join(directory, "img"), exist_ok=True)
    for image in images:
        if not image.get("missing"):
            with open(os.path.join(directory, image["file_name"]), "wb") as f:
                f.write(b"\xff\xd8 not read by the reader")
    document = {"images": [{k: v for k, v in image.items() if k != "missing"} for image in images],
                "annotations": annotations,
                "categories": [{"id": 7, "name": "square"}, {"id": 3, "name": "circle"}, {"id": 9, "name": "star"}]}
    path = os.path.join(directory, "instances.json")
    with open(path, "w") as f:
        json.dump(document, f)
    return path


def _image(image_id, missing=False):
    return {"id": image_id, "file_name": f"img/{image_id}.jpg", "width": 40, "height": 30, "missing": missing}


def _box(ann_id, image_id, category, bbox, **extra):
    return dict({"id": ann_id, "image_id": image_id, "category_id": category, "bbox": bbox}, **extra)


def test_reads_boxes_and_counts_bad_records(tmp_path):
    path = _write(str(tmp_path), [_image(1), _image(2, missing=True), _image(3), _image(4)], [
        _box(1, 1, 7, [1, 2, 10, 5]),                   # square -> class 1 (ids sorted: 3 circle, 7 square, 9 star)
        _box(2, 1, 3, [0, 0, 40.5, 30]),                # overhang < 1 px: clipped to the image
        _box(3, 1, 3, [5, 5, 0, 4]),                    # zero-area
        _box(4, 1, 3, [35, 5, 10, 4]),                  # outside the image
        _box(5, 1, 3, [5, 5, 4, 4], iscrowd=1),         # crowd: not a target
        _box(6, 1, 42, [5, 5, 4, 4]),                   # unknown category
        _box(7, 2, 3, [1, 1, 2, 2]),                    # its image is missing
        _box(8, 4, 9, [1, 1, 5, 5]),                    # a star
    ])
    records = load_coco_detection(path)
    assert records["class_names"] == ["circle", "square", "star"] and records["category_ids"] == [3, 7, 9]
    assert records["image_ids"] == [1, 3, 4] and records["max_boxes"] == 2
    np.testing.assert_allclose(records["boxes"][0], [[1, 2, 11, 7], [0, 0, 40, 30]])
    np.testing.assert_array_equal(records["classes"][0], [1, 0])
    np.testing.assert_array_equal(records["box_mask"], [[1, 1], [0, 0], [1, 0]])
    assert dict(records["skip_counter"].reasons) == {
        "missing image": 1, "zero-area box": 1, "box outside image": 1, "crowd": 1, "unknown category": 1}


def test_exclude_classes_drops_images_and_max_boxes_truncates(tmp_path):
    path = _write(str(tmp_path), [_image(1), _image(2)], [
        _box(1, 1, 7, [1, 1, 5, 5]), _box(2, 1, 9, [10, 10, 5, 5]), _box(3, 2, 7, [1, 1, 5, 5]),
        _box(4, 2, 3, [1, 1, 6, 6]), _box(5, 2, 3, [2, 2, 6, 6])])
    records = load_coco_detection(path, exclude_classes=["star"], max_boxes=2)
    assert records["image_ids"] == [2] and records["boxes"].shape == (1, 2, 4)
    assert dict(records["skip_counter"].reasons) == {"excluded class": 1, "over max_boxes": 1}
    with pytest.raises(ValueError, match="not categories"):
        load_coco_detection(path, exclude_classes=["hexagon"])


def test_image_root_overrides_the_json_folder(tmp_path):
    images = tmp_path / "elsewhere"
    path = _write(str(images), [_image(1)], [_box(1, 1, 7, [1, 1, 5, 5])])
    moved = tmp_path / "instances.json"
    os.replace(path, moved)
    with pytest.raises(ValueError, match="No usable image"):
        load_coco_detection(str(moved))
    records = load_coco_detection(str(moved), image_root=str(images))
    assert records["paths"] == [os.path.join(str(images), "img/1.jpg")]

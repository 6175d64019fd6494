"""Box-moving augmentation, checked by drawing the boxes back on the images (eagerly and inside tf.data)."""

import numpy as np
import tensorflow as tf

from florence_keras.data.detection_dataset import augment_detection
from florence_keras.data.detection_dataset import detection_dataset

COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
BOXES = np.array([[4, 6, 30, 20], [40, 10, 70, 44], [10, 30, 24, 46], [0, 0, 0, 0]], np.float32)  # xyxy
MASK = np.array([1, 1, 1, 0], np.float32)


def _drawn_image(height=48, width=80):
    image = np.zeros((height, width, 3), np.uint8)
    for colour, (x1, y1, x2, y2) in zip(COLOURS, BOXES[:3].astype(int)):
        image[y1:y2, x1:x2] = colour
    return image


def _check_boxes_on_image(image, boxes, mask):
    """Each kept box must frame its colour: its inside is that colour, the pixels of that colour lie in it."""
    image = np.asarray(image, np.float32)
    kept = 0
    for colour, box, valid in zip(COLOURS, np.asarray(boxes), np.asarray(mask)):
        if not valid:
            continue
        kept += 1
        close = np.all(np.abs(image - colour) < 60, axis=-1)  # pixels of this rectangle's colour
        ys, xs = np.nonzero(close)
        found = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        np.testing.assert_allclose(box, found, atol=1.6)  # bilinear edges: within 1.5 px
        x1, y1, x2, y2 = np.round(box).astype(int)
        inner = image[y1 + 2:y2 - 2, x1 + 2:x2 - 2]
        if inner.size:
            np.testing.assert_allclose(inner.reshape(-1, 3).mean(0), colour, atol=25)
    return kept


def test_no_seed_is_fit_and_pad():
    image, boxes, mask = augment_detection(_drawn_image(), BOXES, MASK, 64)
    # 64 / 80 = 0.8: 80 × 48 -> 64 × 38 (rounded), so boxes scale by 0.8 in x and 38 / 48 in y.
    np.testing.assert_allclose(boxes[:3], BOXES[:3] * [0.8, 38 / 48, 0.8, 38 / 48], atol=1e-5)
    assert np.all(np.asarray(image)[39:] == 0)  # 48 × 0.8 = 38.4 -> 38 rows, the rest zero padding
    assert _check_boxes_on_image(image, boxes, mask) == 3


def test_random_flip_scale_crop_keep_boxes_on_their_objects():
    flipped = 0
    for index in range(12):
        seed = tf.constant([3, index], tf.int64)
        image, boxes, mask = augment_detection(_drawn_image(), BOXES, MASK, 64, seed=seed, scale_range=(0.6, 1.6))
        _check_boxes_on_image(image, boxes, mask)
        assert float(np.asarray(mask)[3]) == 0
        flipped += int(np.asarray(boxes)[0, 0] > np.asarray(boxes)[1, 0])
    assert 0 < flipped < 12  # both orientations were drawn
    # A hue rotation recolours the image but moves no box.
    seed = tf.constant([3, 1], tf.int64)
    plain = augment_detection(_drawn_image(), BOXES, MASK, 64, seed=seed, scale_range=(0.6, 1.6))
    hued = augment_detection(_drawn_image(), BOXES, MASK, 64, seed=seed, scale_range=(0.6, 1.6), hue_delta=0.5)
    np.testing.assert_array_equal(np.asarray(hued[1]), np.asarray(plain[1]))
    assert not np.allclose(np.asarray(hued[0]), np.asarray(plain[0]), atol=5)


def test_inside_tf_data(tmp_path):
    path = str(tmp_path / "a.png")
    tf.io.write_file(path, tf.io.encode_png(_drawn_image()))
    records = {"paths": [path], "boxes": BOXES[None], "classes": np.array([[0, 1, 2, 0]], np.int32),
               "box_mask": MASK[None]}
    dataset = detection_dataset(records, 64, 4, lambda x: x, seed=1, scale_range=(0.6, 1.6))
    batch = next(iter(dataset))
    assert batch["images"].shape == (4, 64, 64, 3) and batch["boxes"].shape == (4, 4, 4)
    for i in range(4):
        _check_boxes_on_image(batch["images"][i], batch["boxes"][i], batch["box_mask"][i])
    plain = next(iter(detection_dataset(records, 64, 1, lambda x: x, repeat=False)))
    np.testing.assert_allclose(plain["boxes"][0, :3], BOXES[:3] * [0.8, 38 / 48, 0.8, 38 / 48], atol=1e-5)

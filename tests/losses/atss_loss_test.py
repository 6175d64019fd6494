"""ATSSLoss against a NumPy reference; GIoU by hand and against keras-cv; box coding round trip."""

import math

import numpy as np
import pytest

from florence_keras.losses.atss_loss import ATSSLoss
from florence_keras.losses.detection_boxes import decode_boxes
from florence_keras.losses.detection_boxes import encode_boxes
from florence_keras.losses.detection_boxes import generalized_iou

ANCHORS = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10], [15, 0, 25, 10], [0, 0, 20, 20]], "float32")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_giou(a, b):
    inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    return inter / union - (hull - union) / hull


def test_giou_by_hand_and_against_keras_cv():
    # [0,0,2,2] vs [1,1,3,3]: intersection 1, union 7, hull 9 -> 1/7 - 2/9.
    value = float(generalized_iou(np.array([0, 0, 2, 2], "float32"), np.array([1, 1, 3, 3], "float32")))
    assert abs(value - (1 / 7 - 2 / 9)) < 1e-6
    keras_cv = pytest.importorskip("keras_cv")
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 50, (2, 16, 2, 2)).astype("float32")
    boxes = np.concatenate([corners.min(axis=2), corners.max(axis=2) + 1], axis=-1)  # (2, 16, 4) xyxy
    ours = 1.0 - np.asarray(generalized_iou(boxes[0], boxes[1]))
    reference_loss = keras_cv.losses.GIoULoss(bounding_box_format="xyxy", reduction="none")
    reference = [float(np.asarray(reference_loss(a[None, None], b[None, None])).ravel()[0])
                 for a, b in zip(boxes[0], boxes[1])]  # one pair per call (it reduces over the boxes of a call)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_box_coding_round_trip_and_weights():
    boxes = np.array([[[1, 2, 11, 18], [4, 6, 16, 14], [0, 0, 10, 10], [20, 1, 22, 9], [3, 3, 30, 30]]], "float32")
    deltas = np.asarray(encode_boxes(ANCHORS, boxes))
    np.testing.assert_allclose(np.asarray(decode_boxes(ANCHORS, deltas)), boxes, atol=1e-4)
    # Box 0 vs anchor [0,0,10,10]: centre (6, 10) vs (5, 5), size 10×16 vs 10×10 -> (dy, dx, dh, dw) =
    # (5/10 × 10, 1/10 × 10, log(1.6) × 5, 0): the (10, 10, 5, 5) weights.
    np.testing.assert_allclose(deltas[0, 0], [5.0, 1.0, math.log(1.6) * 5, 0.0], atol=1e-5)


def test_loss_matches_numpy_reference():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 5, 3)).astype("float32")
    deltas = rng.normal(scale=0.3, size=(1, 5, 4)).astype("float32")
    centerness = rng.normal(size=(1, 5)).astype("float32")
    # Box [0,0,10,10] of class 2: anchor 0 is the only positive (see atss_assigner_test).
    targets = {"boxes": np.array([[[0, 0, 10, 10], [0, 0, 0, 0]]], "float32"), "classes": np.array([[2, 0]], "int32"),
               "box_mask": np.array([[1, 0]], "float32")}
    loss = ATSSLoss(top_k=3)
    value = float(loss({"class_logits": logits, "box_deltas": deltas, "centerness": centerness}, targets, ANCHORS,
                       [4, 1]))
    # Focal loss, summed over anchors and classes / 1 positive.
    y = np.zeros((5, 3))
    y[0, 2] = 1
    p = _sigmoid(logits[0].astype(np.float64))
    p_t = np.where(y == 1, p, 1 - p)
    alpha_t = np.where(y == 1, 0.25, 0.75)
    focal = np.sum(-alpha_t * (1 - p_t) ** 2 * np.log(p_t))
    # GIoU of anchor 0's decoded box, weighted by its centerness target (1: centre of the box) / Σ centerness.
    d = deltas[0, 0].astype(np.float64)
    cx, cy = 5 + d[1] * 0.1 * 10, 5 + d[0] * 0.1 * 10
    w, h = 10 * math.exp(d[3] * 0.2), 10 * math.exp(d[2] * 0.2)
    giou = _numpy_giou([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], [0, 0, 10, 10])
    box = 2.0 * (1 - giou)
    # Centerness BCE (target 1) on the positive.
    bce = -math.log(_sigmoid(float(centerness[0, 0])))
    np.testing.assert_allclose(value, focal + box + bce, rtol=1e-4)


def test_no_positive_gives_finite_loss_and_config_round_trip():
    loss = ATSSLoss(alpha=0.3, gamma=1.5, box_weight=1.0, top_k=5)
    assert ATSSLoss.from_config(loss.get_config()).get_config() == loss.get_config()
    value = loss({"class_logits": np.zeros((1, 5, 2), "float32"), "box_deltas": np.zeros((1, 5, 4), "float32"),
                  "centerness": np.zeros((1, 5), "float32")},
                 {"boxes": np.zeros((1, 1, 4), "float32"), "classes": np.zeros((1, 1), "int32"),
                  "box_mask": np.zeros((1, 1), "float32")}, ANCHORS, [4, 1])
    assert np.isfinite(float(value))
    with pytest.raises(ValueError, match="alpha"):
        ATSSLoss(alpha=2.0)

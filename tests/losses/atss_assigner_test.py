"""ATSS assignment on hand-worked cases: candidates, the mean + std threshold, centre-inside, ties, padding."""

import math

import numpy as np

from florence_keras.losses.atss_assigner import atss_assign
from florence_keras.losses.atss_assigner import centerness_targets

# Level A: four 10×10 anchors along x (centres x = 5, 10, 15, 20); level B: one 20×20 anchor (centre (10, 10)).
ANCHORS = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10], [15, 0, 25, 10], [0, 0, 20, 20]], "float32")
LEVELS = [4, 1]
TOP_K = 3


def _mean_plus_std(values):
    """Mean + sample standard deviation (n − 1), written out."""
    mean = sum(values) / len(values)
    return mean + math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _assign(boxes, mask):
    out = atss_assign(ANCHORS, LEVELS, np.array(boxes, "float32"), np.array(mask, "float32"), top_k=TOP_K)
    return {k: np.asarray(v) for k, v in out.items()}


def test_box_equal_to_an_anchor():
    # g = [0, 0, 10, 10], centre (5, 5). Distances: a0 0, a1 5, a2 10, a3 15 -> level A's top 3 = a0, a1, a2;
    # level B's only anchor b0. IoUs: a0 100/100 = 1, a1 50/150 = 1/3, a2 0, b0 100/400 = 1/4.
    # Threshold = mean + std of [1, 1/3, 0, 1/4] = 0.395833 + 0.426956 = 0.822789: only a0 passes.
    out = _assign([[[0, 0, 10, 10]]], [[1]])
    np.testing.assert_array_equal(out["candidates"][0, 0], [True, True, True, False, True])
    np.testing.assert_allclose(out["ious"][0, 0], [1.0, 1 / 3, 0.0, 0.0, 0.25], atol=1e-6)
    expected = _mean_plus_std([1.0, 1 / 3, 0.0, 0.25])
    assert abs(expected - 0.822789) < 1e-5
    np.testing.assert_allclose(out["threshold"][0, 0], expected, atol=1e-5)
    np.testing.assert_array_equal(out["positive"][0], [True, False, False, False, False])
    assert out["matched"][0, 0] == 0


def test_anchor_centre_outside_the_box_is_not_positive():
    # g = [0, 0, 4, 10], centre (2, 5). Candidates a0, a1, a2 (distances 3, 8, 13) and b0. IoUs: a0 40/100 = 0.4,
    # a1 0, a2 0, b0 40/400 = 0.1 -> threshold 0.125 + 0.189297 = 0.314297. a0 clears it, but its centre
    # (5, 5) is outside the box: no positive at all.
    out = _assign([[[0, 0, 4, 10]]], [[1]])
    np.testing.assert_allclose(out["threshold"][0, 0], _mean_plus_std([0.4, 0.0, 0.0, 0.1]), atol=1e-5)
    assert out["ious"][0, 0, 0] >= out["threshold"][0, 0]
    assert not out["positive"][0].any()


def test_anchor_claimed_by_two_boxes_goes_to_the_higher_iou_and_padding_is_ignored():
    # g' = [0, 0, 12, 10] (listed first): candidates a0, a1, a2 (distances 1, 4, 9) and b0; IoUs 100/120,
    # 70/150, 20/200, 120/400 -> threshold 0.425 + 0.310764 = 0.735764: a0 (0.8333) passes.
    # g = [0, 0, 10, 10] (second) also takes a0 with IoU 1 > 0.8333, so a0 is matched to box 1.
    # A padded third box equal to a1 (IoU 1) must not make a1 positive.
    out = _assign([[[0, 0, 12, 10], [0, 0, 10, 10], [5, 0, 15, 10]]], [[1, 1, 0]])
    np.testing.assert_allclose(out["threshold"][0, 0], _mean_plus_std([100 / 120, 70 / 150, 20 / 200, 120 / 400]),
                               atol=1e-5)
    np.testing.assert_array_equal(out["positive"][0], [True, False, False, False, False])
    assert out["matched"][0, 0] == 1
    assert not out["candidates"][0, 2].any()


def test_batch_rows_are_independent():
    out = _assign([[[0, 0, 10, 10]], [[0, 0, 4, 10]]], [[1], [1]])
    np.testing.assert_array_equal(out["positive"], [[True, False, False, False, False], [False] * 5])


def test_centerness_targets_by_hand():
    # Anchor centre (5, 5) in [0, 0, 10, 20]: l = r = 5, t = 5, b = 15 -> sqrt(1 · 5/15) = 0.57735.
    value = np.asarray(centerness_targets(ANCHORS[:1], np.array([[[0, 0, 10, 20]]], "float32")))
    np.testing.assert_allclose(value, [[math.sqrt(5 / 15)]], atol=1e-6)

"""DetectionFPN and ATSSHead: shapes, round trips, the prior bias, the per-level box scale, the top-down path."""

import numpy as np
import pytest

from florence_keras.layers.atss_head import ATSSHead
from florence_keras.layers.detection_fpn import DetectionFPN
from tests.test_case import run_serialization_test


def _levels(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(2, 8, 8, 4)).astype("float32"), rng.normal(size=(2, 4, 4, 6)).astype("float32"),
            rng.normal(size=(2, 2, 2, 8)).astype("float32")]


def test_fpn_shapes_round_trip_and_top_down_path():
    fpn = DetectionFPN(channels=8)
    out = fpn(_levels())
    assert [tuple(level.shape) for level in out] == [(2, 8, 8, 8), (2, 4, 4, 8), (2, 2, 2, 8), (2, 1, 1, 8),
                                                     (2, 1, 1, 8)]
    # Round trip (the harness compares single tensors / dicts; the FPN returns a list).
    clone = DetectionFPN.from_config(fpn.get_config())
    clone(_levels())
    assert clone.get_config() == fpn.get_config()
    clone.set_weights(fpn.get_weights())
    for a, b in zip(clone(_levels()), out):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The finest output sees the coarsest input (top-down path); the coarsest output does not see the finest.
    changed = _levels()
    changed[2] = changed[2] + 1.0
    after = fpn(changed)
    assert not np.allclose(np.asarray(after[0]), np.asarray(out[0]))
    changed = _levels()
    changed[0] = changed[0] + 1.0
    np.testing.assert_allclose(np.asarray(fpn(changed)[2]), np.asarray(out[2]), atol=1e-6)


def test_fpn_odd_sizes():
    levels = [np.zeros((1, 7, 5, 4), "float32"), np.zeros((1, 4, 3, 4), "float32"), np.zeros((1, 2, 2, 4), "float32")]
    assert [tuple(x.shape[1:3]) for x in DetectionFPN(channels=4)(levels)] == [(7, 5), (4, 3), (2, 2), (1, 1), (1, 1)]


def test_head_prior_scales_and_round_trip():
    head = ATSSHead(num_classes=3, channels=8, num_levels=2, num_convs=1, kernel_size=3)
    levels = [np.zeros((1, 4, 4, 8), "float32"), np.zeros((1, 2, 2, 8), "float32")]
    out = head(levels)
    # Zero inputs: every class probability is the prior 0.01.
    np.testing.assert_allclose(1 / (1 + np.exp(-np.asarray(out["class_logits"]))), 0.01, rtol=1e-5)
    rng = np.random.default_rng(0)
    levels = [rng.normal(size=(1, 4, 4, 8)).astype("float32"), rng.normal(size=(1, 2, 2, 8)).astype("float32")]
    before = np.asarray(head(levels)["box_deltas"])
    head.scales.assign([1.0, 3.0])
    after = np.asarray(head(levels)["box_deltas"])
    np.testing.assert_allclose(after[:, :16], before[:, :16], atol=1e-6)  # level 0: 16 locations, scale 1
    np.testing.assert_allclose(after[:, 16:], 3.0 * before[:, 16:], atol=1e-6)
    run_serialization_test(ATSSHead(num_classes=2, channels=8, num_levels=2), levels)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="channels"):
        DetectionFPN(channels=0)
    with pytest.raises(ValueError, match="kernel_size"):
        ATSSHead(2, 8, kernel_size=5)
    with pytest.raises(ValueError, match="built for 2 levels"):
        ATSSHead(2, 8, num_levels=2)([np.zeros((1, 2, 2, 8), "float32")] * 3)

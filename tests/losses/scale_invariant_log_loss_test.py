"""Scale-invariant log loss, gradient matching and the Keras depth metric vs independent NumPy computations."""

import math

import keras
import numpy as np
import pytest

from florence_keras.evaluation.depth_metrics import depth_metrics
from florence_keras.losses.depth_gradient_matching import gradient_matching_loss
from florence_keras.losses.depth_metric import DEPTH_METRICS
from florence_keras.losses.depth_metric import DepthMetric
from florence_keras.losses.scale_invariant_log_loss import ScaleInvariantLogLoss
from florence_keras.losses.scale_invariant_log_loss import scale_invariant_log_loss


def _numpy_silog(true, pred, lam):
    out = []
    for g, p in zip(true, pred):
        valid = g > 1e-3
        if not valid.any():
            out.append(0.0)
            continue
        d = np.log(p[valid]) - np.log(g[valid])
        out.append(np.mean(d**2) - lam * np.mean(d) ** 2)
    return np.array(out)


def _numpy_gradient(true, pred, scales):
    out = []
    for g, p in zip(true, pred):
        total = 0.0
        for k in range(scales):
            gs, ps = g[:: 2**k, :: 2**k], p[:: 2**k, :: 2**k]
            terms = []
            h, w = gs.shape
            for i in range(h):
                for j in range(w):
                    for di, dj in ((0, 1), (1, 0)):
                        if i + di < h and j + dj < w and gs[i, j] > 1e-3 and gs[i + di, j + dj] > 1e-3:
                            r0 = math.log(ps[i, j]) - math.log(gs[i, j])
                            r1 = math.log(ps[i + di, j + dj]) - math.log(gs[i + di, j + dj])
                            terms.append(abs(r1 - r0))
            total += np.sum(terms) / max(len(terms), 1)
        out.append(total / scales)
    return np.array(out)


def _random_depths(rng, shape=(3, 8, 10)):
    true = rng.uniform(0.5, 10.0, shape).astype("float32")
    true[rng.random(shape) < 0.2] = 0.0  # invalid pixels
    pred = (true + rng.normal(0.0, 0.5, shape)).clip(0.2, None).astype("float32")
    pred[true == 0] = rng.uniform(0.2, 50.0, (true == 0).sum())
    return true, pred


def test_hand_worked_silog():
    # d = log 2 - log 1 = log 2 on one pixel, d = 0 on the other, the third pixel invalid:
    # mean(d²) = (log 2)² / 2, mean(d) = log 2 / 2 -> λ = 1: (log 2)² / 4; λ = 0: (log 2)² / 2.
    true = np.array([[[1.0, 3.0, 0.0]]], "float32")
    pred = np.array([[[2.0, 3.0, 99.0]]], "float32")
    for lam, expected in ((1.0, math.log(2) ** 2 / 4), (0.0, math.log(2) ** 2 / 2)):
        np.testing.assert_allclose(np.asarray(scale_invariant_log_loss(true, pred, lam=lam)), [expected], rtol=1e-6)


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.85, 1.0])
def test_silog_matches_numpy(lam):
    true, pred = _random_depths(np.random.default_rng(1))
    true[2] = 0.0  # an image without any valid pixel contributes 0
    got = np.asarray(scale_invariant_log_loss(true, pred, lam=lam))
    np.testing.assert_allclose(got, _numpy_silog(true, pred, lam), rtol=1e-5, atol=1e-7)
    loss = ScaleInvariantLogLoss(lam=lam)
    np.testing.assert_allclose(float(loss(true, pred)), _numpy_silog(true, pred, lam).mean(), rtol=1e-5)


def test_lambda_one_is_scale_invariant_and_mask_is_honoured():
    true, pred = _random_depths(np.random.default_rng(2))
    base = np.asarray(scale_invariant_log_loss(true, pred, lam=1.0))
    np.testing.assert_allclose(np.asarray(scale_invariant_log_loss(true, 7.5 * pred, lam=1.0)), base, rtol=1e-4)
    assert float(ScaleInvariantLogLoss(lam=0.5)(true, 7.5 * pred)) > float(ScaleInvariantLogLoss(lam=0.5)(true, pred))
    mask = np.zeros_like(true)
    mask[:, :4] = 1.0
    got = np.asarray(scale_invariant_log_loss(true, pred, lam=0.5, mask=mask))
    np.testing.assert_allclose(got, _numpy_silog(true * mask, pred, 0.5), rtol=1e-5, atol=1e-7)


def test_gradient_matching_matches_numpy_loops():
    true, pred = _random_depths(np.random.default_rng(3), shape=(2, 9, 7))
    got = np.asarray(gradient_matching_loss(true, pred, num_scales=2))
    np.testing.assert_allclose(got, _numpy_gradient(true, pred, 2), rtol=1e-5)
    # A constant factor leaves log-depth gradients unchanged: exact prediction up to scale scores 0.
    scaled = np.where(true > 0, 3.0 * true, 1.0)
    np.testing.assert_allclose(np.asarray(gradient_matching_loss(true, scaled, num_scales=3)), 0.0, atol=1e-6)


def test_loss_with_gradient_term_and_serialization():
    true, pred = _random_depths(np.random.default_rng(4))
    loss = ScaleInvariantLogLoss(lam=0.85, gradient_weight=0.5, gradient_scales=2)
    expected = (_numpy_silog(true, pred, 0.85) + 0.5 * _numpy_gradient(true, pred, 2)).mean()
    np.testing.assert_allclose(float(loss(true, pred)), expected, rtol=1e-5)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert clone.get_config() == loss.get_config()
    np.testing.assert_allclose(float(clone(true, pred)), expected, rtol=1e-5)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="lam"):
        ScaleInvariantLogLoss(lam=1.5)
    with pytest.raises(ValueError, match="gradient_weight"):
        ScaleInvariantLogLoss(gradient_weight=-1)
    with pytest.raises(ValueError, match="same shape"):
        ScaleInvariantLogLoss()(np.ones((1, 4, 4)), np.ones((1, 4, 5)))
    with pytest.raises(ValueError, match="kind"):
        DepthMetric("abs_diff")


@pytest.mark.parametrize("kind", DEPTH_METRICS)
def test_keras_metric_streams_the_numpy_metric(kind):
    true, pred = _random_depths(np.random.default_rng(5), shape=(4, 6, 6))
    true[1] = 0.0
    metric = DepthMetric(kind, max_depth=9.0)
    metric.update_state(true[:2], pred[:2])
    metric.update_state(true[2:], pred[2:])
    expected = depth_metrics(true, pred, max_depth=9.0)[kind]
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-5)
    assert DepthMetric.from_config(metric.get_config()).get_config() == metric.get_config()

"""Depth metrics vs hand-worked values and an independent per-pixel NumPy loop."""

import math

import numpy as np
import pytest

from florence_keras.evaluation.depth_metrics import METRIC_NAMES
from florence_keras.evaluation.depth_metrics import DepthMetricsAccumulator
from florence_keras.evaluation.depth_metrics import depth_metrics


def _loop_metrics(true, pred, median_scaling=False, min_depth=1e-3, max_depth=None):
    """Pixel by pixel in Python floats: the textbook definitions, per image then averaged."""
    per_image = []
    for g_img, p_img in zip(true, pred):
        pairs = [(float(g), float(p)) for g, p in zip(g_img.ravel(), p_img.ravel())
                 if math.isfinite(g) and g > min_depth and (max_depth is None or g <= max_depth)]
        if not pairs:
            continue
        if median_scaling:
            factor = float(np.median([g for g, _ in pairs])) / float(np.median([p for _, p in pairs]))
            pairs = [(g, p * factor) for g, p in pairs]
        hi = math.inf if max_depth is None else max_depth
        pairs = [(g, min(max(p, min_depth), hi)) for g, p in pairs]
        n = len(pairs)
        row = {
            "abs_rel": sum(abs(p - g) / g for g, p in pairs) / n,
            "sq_rel": sum((p - g) ** 2 / g for g, p in pairs) / n,
            "rmse": math.sqrt(sum((p - g) ** 2 for g, p in pairs) / n),
            "rmse_log": math.sqrt(sum((math.log(p) - math.log(g)) ** 2 for g, p in pairs) / n),
        }
        for k in (1, 2, 3):
            row[f"delta{k}"] = sum(max(p / g, g / p) < 1.25**k for g, p in pairs) / n
        per_image.append(row)
    return {name: sum(r[name] for r in per_image) / len(per_image) for name in METRIC_NAMES}


def test_hand_worked_example():
    # Valid pixels (g, p): (2, 2), (4, 5), (1, 2); the 0 is invalid.
    true = np.array([[2.0, 4.0], [1.0, 0.0]])
    pred = np.array([[2.0, 5.0], [2.0, 7.0]])
    m = depth_metrics(true, pred)
    assert m["abs_rel"] == pytest.approx((0 + 0.25 + 1.0) / 3)
    assert m["sq_rel"] == pytest.approx((0 + 0.25 + 1.0) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt((0 + 1 + 1) / 3))
    assert m["rmse_log"] == pytest.approx(math.sqrt((math.log(1.25) ** 2 + math.log(2) ** 2) / 3))
    # ratios 1, 1.25, 2: 1.25 is not < 1.25; 2 < 1.25² is false, 2 < 1.25³ = 1.953 is false.
    assert (m["delta1"], m["delta2"], m["delta3"]) == pytest.approx((1 / 3, 2 / 3, 2 / 3))
    assert m["num_pixels"] == 3 and m["num_images"] == 1 and m["median_scaling"] is False


def test_median_scaling_hand_worked():
    # median(g) = 2, median(p) = 4 -> p * 0.5 = g exactly: every error 0, every δ 1.
    m = depth_metrics([[1.0, 2.0, 3.0]], [[2.0, 4.0, 6.0]], median_scaling=True)
    assert m["abs_rel"] == pytest.approx(0.0) and m["rmse"] == pytest.approx(0.0) and m["delta1"] == 1.0
    assert m["median_scaling"] is True


@pytest.mark.parametrize("median_scaling,max_depth", [(False, None), (True, None), (False, 8.0)])
def test_random_maps_match_the_loop(median_scaling, max_depth):
    rng = np.random.default_rng(0)
    true = rng.uniform(0.5, 10.0, (4, 7, 9))
    true[rng.random(true.shape) < 0.25] = 0.0
    true[0, 0, 0] = np.nan
    true[3] = 0.0  # an image without valid pixels is not scored
    pred = np.abs(true * rng.lognormal(0.1, 0.3, true.shape)) + 0.01
    pred[np.isnan(pred)] = 1.0
    got = depth_metrics(true, pred, median_scaling=median_scaling, max_depth=max_depth)
    expected = _loop_metrics(true, pred, median_scaling=median_scaling, max_depth=max_depth)
    for name in METRIC_NAMES:
        assert got[name] == pytest.approx(expected[name], rel=1e-10), name
    assert got["num_images"] == 3
    accumulator = DepthMetricsAccumulator(median_scaling=median_scaling, max_depth=max_depth)
    accumulator.update(true[:1], pred[:1])
    accumulator.update(true[1:], pred[1:])
    for name in METRIC_NAMES:
        assert accumulator.result()[name] == pytest.approx(got[name], rel=1e-12)


def test_errors():
    with pytest.raises(ValueError, match="shape"):
        depth_metrics(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="No image"):
        depth_metrics(np.zeros((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="min_depth"):
        depth_metrics(np.ones((2, 3)), np.ones((2, 3)), min_depth=0)

"""evaluate_depth scores predict()'s output batch by batch exactly as depth_metrics does on the whole set."""

import matplotlib.image
import numpy as np
import pytest

from florence_keras.evaluation.depth_evaluation import evaluate_depth
from florence_keras.evaluation.depth_evaluation import plot_depth_examples
from florence_keras.evaluation.depth_metrics import METRIC_NAMES
from florence_keras.evaluation.depth_metrics import depth_metrics


class _Estimator:
    """predict(images) -> depth from the first channel: a stand-in with a known output."""

    def predict(self, images, batch_size=None):
        return images[..., 0].astype(np.float32) / 25.0 + 0.5


def test_evaluate_depth_matches_depth_metrics(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 10, 12, 3)).astype(np.uint8)
    depth = rng.uniform(0.5, 10.0, (7, 10, 12)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.1] = 0.0
    scores = evaluate_depth(_Estimator(), images, depth, batch_size=3)
    predictions = _Estimator().predict(images)
    np.testing.assert_array_equal(scores["predictions"], predictions)
    for key, scaling in (("metrics", False), ("metrics_median_scaled", True)):
        expected = depth_metrics(depth, predictions, median_scaling=scaling)
        for name in METRIC_NAMES:
            assert scores[key][name] == pytest.approx(expected[name], rel=1e-12)
    path = plot_depth_examples(images, depth, predictions, tmp_path / "x.png", max_rows=2)
    assert matplotlib.image.imread(path).ndim == 3

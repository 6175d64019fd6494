"""TaskAwareAttention (dynamic ReLU): the coefficients and max of two lines against NumPy, round trip, bad args."""

import numpy as np
import pytest

from florence_keras.layers.task_aware_attention import TaskAwareAttention
from tests.layers import dyhead_numpy
from tests.test_case import run_serialization_test


def test_matches_numpy_dynamic_relu():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5, 8)).astype("float32")
    layer = TaskAwareAttention()
    layer.build(x.shape)
    weights = [rng.normal(scale=2.0, size=w.shape).astype("float32") for w in layer.get_weights()]
    layer.set_weights(weights)
    assert [w.shape for w in weights] == [(8, 2), (2,), (2, 32), (32,)]
    np.testing.assert_allclose(np.asarray(layer(x)), dyhead_numpy.dynamic_relu(x, *weights), atol=1e-5)


def test_hand_worked_coefficients():
    # Zero FC weights and biases chosen so theta = hard_sigmoid(bias) is (a1, b1, a2, b2) = (1, 0.5, 0.25, 0.75):
    # a1 = 2, b1 = 0, a2 = -0.5, b2 = 0.25, so out = max(2x, 0.25 - 0.5x).
    layer = TaskAwareAttention(reduction=2)
    x = np.linspace(-2, 2, 12, dtype="float32").reshape(1, 3, 2, 2)
    layer.build(x.shape)
    theta = np.repeat(np.array([1.0, 0.5, 0.25, 0.75], "float32"), 2)
    layer.set_weights([np.zeros((2, 1), "float32"), np.zeros(1, "float32"), np.zeros((1, 8), "float32"),
                       6 * theta - 3])
    np.testing.assert_allclose(np.asarray(layer(x)), np.maximum(2 * x, 0.25 - 0.5 * x), atol=1e-6)
    # theta = 0.5 everywhere: a1 = 1, a2 = b1 = b2 = 0: the plain ReLU.
    layer.set_weights([np.zeros((2, 1), "float32"), np.zeros(1, "float32"), np.zeros((1, 8), "float32"),
                       np.zeros(8, "float32")])
    np.testing.assert_allclose(np.asarray(layer(x)), np.maximum(x, 0), atol=1e-7)


def test_round_trip_and_bad_arguments():
    run_serialization_test(TaskAwareAttention(reduction=2), np.ones((1, 3, 3, 4), "float32"))
    with pytest.raises(ValueError, match="reduction"):
        TaskAwareAttention(reduction=0)

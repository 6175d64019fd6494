"""ScaleAwareAttention: pi = hard_sigmoid(relu(conv1x1(GAP))) against NumPy, its range, round trip."""

import numpy as np

from florence_keras.layers.scale_aware_attention import ScaleAwareAttention
from tests.layers import dyhead_numpy
from tests.test_case import run_serialization_test


def test_matches_numpy_formula_across_the_hard_sigmoid_pieces():
    rng = np.random.default_rng(0)
    # Image means -2, 0.2, 1, 3 along every channel: with weights 1/C per channel and bias 0 the pre-activation is
    # the mean, so the four images fall on relu's zero, the linear part and relu6's cap.
    x = rng.normal(size=(4, 5, 3, 6)).astype("float32")
    x = x - x.mean(axis=(1, 2, 3), keepdims=True) + np.array([-2.0, 0.2, 1.0, 3.0], "float32")[:, None, None, None]
    layer = ScaleAwareAttention()
    layer.build(x.shape)
    layer.gate.set_weights([np.full((6, 1), 1 / 6, "float32"), np.zeros(1, "float32")])
    pi = np.asarray(layer.attention(x)).reshape(-1)
    np.testing.assert_allclose(pi, [0.5, 0.5 + 0.2 / 6, 0.5 + 1 / 6, 1.0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer(x)), x * pi[:, None, None, None], atol=1e-6)

    weight, bias = rng.normal(size=(6, 1)).astype("float32"), np.array([0.7], "float32")
    layer.gate.set_weights([weight, bias])
    np.testing.assert_allclose(np.asarray(layer(x)), dyhead_numpy.scale_attention(x, weight, bias), atol=1e-5)


def test_fresh_gate_is_near_one_half_and_round_trip():
    x = np.random.default_rng(1).normal(size=(2, 7, 5, 8)).astype("float32")
    layer = ScaleAwareAttention()
    layer.build(x.shape)
    pi = np.asarray(layer.attention(x))
    assert pi.shape == (2, 1, 1, 1) and np.all((pi >= 0.5) & (pi < 0.51))
    run_serialization_test(ScaleAwareAttention(), x)

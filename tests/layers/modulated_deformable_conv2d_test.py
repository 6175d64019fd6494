"""DCNv2 layer: values and gradients against a NumPy loop reference, plain-conv equivalence, round trips."""

import numpy as np
import pytest
import tensorflow as tf

import keras

from florence_keras.layers.modulated_deformable_conv2d import ModulatedDeformableConv2D
from florence_keras.layers.modulated_deformable_conv2d import modulated_deformable_conv2d
from tests.layers.dyhead_numpy import dcn as _reference
from tests.test_case import run_serialization_test


def _case(batch, height, width, channels, filters, strides, seed, dtype="float64", spread=3.0):
    rng = np.random.default_rng(seed)
    out_h, out_w = -(-height // strides), -(-width // strides)
    return dict(
        x=rng.normal(size=(batch, height, width, channels)).astype(dtype),
        offset=rng.uniform(-spread, spread, size=(batch, out_h, out_w, 18)).astype(dtype),
        mask=rng.uniform(0, 1, size=(batch, out_h, out_w, 9)).astype(dtype),
        kernel=rng.normal(size=(3, 3, channels, filters)).astype(dtype),
        bias=rng.normal(size=(filters,)).astype(dtype),
    )


@pytest.mark.parametrize("strides,height,width", [(1, 7, 5), (2, 7, 5), (2, 6, 8), (1, 4, 6)])
def test_values_match_numpy_loop(strides, height, width):
    case = _case(2, height, width, 3, 4, strides, seed=height * 10 + strides)
    expected = _reference(strides=strides, **case)
    actual = np.asarray(modulated_deformable_conv2d(case["x"], case["offset"], case["mask"], case["kernel"],
                                                    case["bias"], strides=strides))
    assert actual.shape == expected.shape and actual.dtype == np.float64
    np.testing.assert_allclose(actual, expected, atol=1e-12)
    # float32, the layer's usual dtype.
    case32 = {key: value.astype("float32") for key, value in case.items()}
    actual32 = np.asarray(modulated_deformable_conv2d(case32["x"], case32["offset"], case32["mask"], case32["kernel"],
                                                      case32["bias"], strides=strides))
    np.testing.assert_allclose(actual32, expected, atol=2e-5)


@pytest.mark.parametrize("strides", [1, 2])
def test_gradients_match_finite_differences(strides):
    case = _case(1, 5, 4, 2, 3, strides, seed=7 + strides)
    weights = np.random.default_rng(3).normal(size=_reference(strides=strides, **case).shape)
    names = ["x", "offset", "mask", "kernel", "bias"]
    tensors = [tf.constant(case[name]) for name in names]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        loss = tf.reduce_sum(modulated_deformable_conv2d(*tensors, strides=strides) * weights)
    grads = dict(zip(names, tape.gradient(loss, tensors)))

    eps = 1e-6
    for name in names:
        numeric = np.zeros_like(case[name])
        for index in np.ndindex(case[name].shape):
            plus, minus = dict(case), dict(case)
            plus[name], minus[name] = case[name].copy(), case[name].copy()
            plus[name][index] += eps
            minus[name][index] -= eps
            numeric[index] = (np.sum(_reference(strides=strides, **plus) * weights)
                              - np.sum(_reference(strides=strides, **minus) * weights)) / (2 * eps)
        np.testing.assert_allclose(np.asarray(grads[name]), numeric, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("strides,height,width", [(1, 7, 5), (2, 7, 5), (2, 8, 6), (1, 8, 6)])
def test_zero_offsets_and_unit_mask_equal_conv2d_same(strides, height, width):
    x = np.random.default_rng(0).normal(size=(2, height, width, 3)).astype("float32")
    conv = keras.layers.Conv2D(5, 3, strides=strides, padding="same")
    expected = np.asarray(conv(x))
    kernel, bias = conv.get_weights()
    out_h, out_w = expected.shape[1:3]
    layer = ModulatedDeformableConv2D(5, strides=strides, offset_conv=False)
    layer.build(x.shape)
    layer.set_weights([kernel, bias])
    actual = np.asarray(layer(x, offset=np.zeros((2, out_h, out_w, 18), "float32"),
                              modulation=np.ones((2, out_h, out_w, 9), "float32")))
    np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_fresh_layer_is_half_a_plain_conv():
    # The offset/mask conv is zero-initialised: offsets 0, mask sigmoid(0) = 0.5.
    x = np.random.default_rng(1).normal(size=(1, 6, 5, 3)).astype("float32")
    layer = ModulatedDeformableConv2D(4, strides=2, bias_initializer="ones")
    out = np.asarray(layer(x))
    conv = keras.layers.Conv2D(4, 3, strides=2, padding="same", use_bias=False)
    conv.build(x.shape)
    conv.set_weights([layer.kernel.numpy()])
    np.testing.assert_allclose(out, 0.5 * np.asarray(conv(x)) + 1.0, atol=1e-5)


def test_own_offsets_and_given_offsets_agree_with_reference():
    case = _case(1, 5, 6, 3, 2, 1, seed=11, dtype="float32", spread=1.5)
    layer = ModulatedDeformableConv2D(2)
    layer.build(case["x"].shape)
    rng = np.random.default_rng(2)
    layer.set_weights([case["kernel"], case["bias"]]
                      + [0.3 * rng.normal(size=w.shape).astype("float32") for w in layer.offset_mask.get_weights()])
    offset, mask = (np.asarray(t) for t in layer.offsets_and_modulation(case["x"]))
    assert offset.shape == (1, 5, 6, 18) and mask.shape == (1, 5, 6, 9) and 0 < mask.min() and mask.max() < 1
    expected = _reference(case["x"], offset, mask, case["kernel"], case["bias"], 1)
    np.testing.assert_allclose(np.asarray(layer(case["x"])), expected, atol=2e-5)
    np.testing.assert_allclose(np.asarray(layer(case["x"], offset=case["offset"], modulation=case["mask"])),
                               _reference(strides=1, **case), atol=2e-5)


def test_unknown_spatial_size_in_a_graph():
    layer = ModulatedDeformableConv2D(4, strides=2)
    layer.build((None, None, None, 3))
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    for height, width in [(7, 5), (4, 10)]:
        x = np.random.default_rng(height).normal(size=(2, height, width, 3)).astype("float32")
        np.testing.assert_allclose(np.asarray(fn(x)), np.asarray(layer(x)), atol=1e-6)
        assert tuple(fn(x).shape) == (2, -(-height // 2), -(-width // 2), 4)


def test_bfloat16_policy_samples_at_the_right_place():
    # Positions are computed in float32: at column ~150 bfloat16 positions would be off by whole pixels.
    x = np.random.default_rng(4).normal(size=(1, 3, 160, 2)).astype("float32")
    offset = np.full((1, 3, 160, 18), 0.25, "float32")
    mask = np.ones((1, 3, 160, 9), "float32")
    layer = ModulatedDeformableConv2D(2, offset_conv=False, dtype="mixed_bfloat16")
    out = np.asarray(layer(x, offset=offset, modulation=mask), "float32")
    expected = _reference(x, offset, mask, layer.kernel.numpy(), layer.bias.numpy(), 1)
    np.testing.assert_allclose(out, expected, atol=0.02 * np.abs(expected).max())


def test_round_trip_and_bad_arguments():
    x = np.random.default_rng(5).normal(size=(1, 5, 4, 3)).astype("float32")
    run_serialization_test(ModulatedDeformableConv2D(4, strides=2, use_bias=False), x)
    with pytest.raises(ValueError, match="filters"):
        ModulatedDeformableConv2D(0)
    with pytest.raises(ValueError, match="kernel_size"):
        ModulatedDeformableConv2D(4, kernel_size=2)
    with pytest.raises(ValueError, match="strides"):
        ModulatedDeformableConv2D(4, strides=0)
    with pytest.raises(ValueError, match="offset_conv=False"):
        ModulatedDeformableConv2D(4, offset_conv=False)(x)
    with pytest.raises(ValueError, match="both"):
        ModulatedDeformableConv2D(4)(x, offset=np.zeros((1, 5, 4, 18), "float32"))
    with pytest.raises(ValueError, match="18 channels"):
        ModulatedDeformableConv2D(4)(x, offset=np.zeros((1, 5, 4, 8), "float32"),
                                     modulation=np.zeros((1, 5, 4, 9), "float32"))

"""The fast paths of the window-transformer layers equal their plain Keras composition.

`fused_ops` (LayerNorm without extra passes, the norm's affine folded into the next projection,
GELU with a hand-written gradient) and `WindowAttention.attend_map` (windows and heads in two
transposes) are checked against numpy and against the same block written with Keras' own layers
— outputs and gradients.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from florence_keras.layers import SwinTransformerBlock
from florence_keras.layers import WindowAttention
from florence_keras.layers import fused_ops
from florence_keras.layers import window_utils


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_standardize_matches_numpy():
    x = _rng().normal(3.0, 2.0, (5, 7)).astype("float32")
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(fused_ops.standardize(x, 1e-5), expected, atol=1e-5)


def _norm_and_dense(channels, units, seed=1, use_bias=True):
    rng = _rng(seed)
    norm = keras.layers.LayerNormalization(epsilon=1e-5)
    norm.build((None, channels))
    norm.set_weights([rng.normal(1, 0.3, channels).astype("float32"),
                      rng.normal(0, 0.3, channels).astype("float32")])
    dense = keras.layers.Dense(units, use_bias=use_bias)
    dense.build((None, channels))
    weights = [rng.normal(0, 0.5, (channels, units)).astype("float32")]
    if use_bias:
        weights.append(rng.normal(0, 0.5, units).astype("float32"))
    dense.set_weights(weights)
    return norm, dense


def test_apply_layer_norm_matches_keras():
    norm, _ = _norm_and_dense(6, 4)
    x = _rng(2).normal(0, 3, (4, 6)).astype("float32")
    np.testing.assert_allclose(fused_ops.apply_layer_norm(x, norm), norm(x), atol=1e-5)


@pytest.mark.parametrize("rows", [5, 20])  # fewer rows than outputs: the affine on the tokens; more: folded
@pytest.mark.parametrize("use_bias", [True, False])
def test_normalized_dense_folds_the_affine_and_the_output_scale(use_bias, rows):
    norm, dense = _norm_and_dense(6, 9, use_bias=use_bias)
    assert fused_ops.worth_folding(rows, 9) == (rows > 9)
    x = _rng(3).normal(1, 2, (rows, 6)).astype("float32")
    x_hat = fused_ops.standardize(x, norm.epsilon)
    expected = dense(norm(x)).numpy()
    np.testing.assert_allclose(fused_ops.normalized_dense(x_hat, norm, dense), expected, atol=1e-4)
    expected[:, :3] *= 0.5
    scaled = fused_ops.normalized_dense(x_hat, norm, dense, output_scale=(0.5, 3))
    np.testing.assert_allclose(scaled, expected, atol=1e-4)


def test_worth_folding_counts_tokens_against_outputs():
    assert fused_ops.worth_folding(3136, 288)  # Swin-T stage 1 at batch 1: fold
    assert not fused_ops.worth_folding(49, 2304)  # stage 4 at batch 1: the affine on 49 tokens is cheaper
    assert fused_ops.worth_folding(None, 2304)  # unknown batch while tracing: assume a large one


def test_normalized_dense_falls_back_for_lora():
    norm, dense = _norm_and_dense(6, 4)
    dense.enable_lora(2)
    dense.lora_kernel_b.assign(_rng(4).normal(0, 0.5, (2, 4)).astype("float32"))
    x = _rng(5).normal(0, 1, (3, 6)).astype("float32")
    x_hat = fused_ops.standardize(x, norm.epsilon)
    np.testing.assert_allclose(fused_ops.normalized_dense(x_hat, norm, dense), dense(norm(x)),
                               atol=1e-4)


def test_gelu_value_and_gradient_match_the_formula():
    x = np.linspace(-5, 5, 41).astype("float32")
    cdf = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x])
    pdf = np.exp(-0.5 * x.astype("float64") ** 2) / math.sqrt(2 * math.pi)
    for training in (False, True):
        tensor = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(tensor)
            y = fused_ops.gelu(tensor, training=training)
        np.testing.assert_allclose(y, x * cdf, atol=1e-6)
        np.testing.assert_allclose(tape.gradient(y, tensor), cdf + x * pdf, atol=1e-6)
    bf16 = fused_ops.gelu(tf.constant(x, tf.bfloat16), training=True)
    assert bf16.dtype == tf.bfloat16


@pytest.mark.parametrize(
    "spatial,window,shift",
    [((4, 6), (2, 3), (1, 1)), ((2, 4, 4), (2, 2, 2), (0, 1, 1)), ((4, 4), (2, 2), (0, 0))],
)
def test_attend_map_equals_partition_call_reverse(spatial, window, shift):
    layer = WindowAttention(8, 2, window)
    x = _rng(6).normal(0, 1, (2,) + spatial + (8,)).astype("float32")
    layer.build((None, None, 8))
    mask = window_utils.shifted_window_mask(spatial, window, shift)
    windows = window_utils.window_partition(ops.convert_to_tensor(x), spatial, window)
    expected = window_utils.window_reverse(layer(windows, attention_mask=mask), spatial, window)
    context = layer.attend_map(x, attention_mask=mask)
    got = ops.reshape(layer.project(ops.reshape(context, (-1, 8))), x.shape)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def _reference_block(block, x):
    """The block written plainly with Keras' own layers (Swin's order of operations)."""
    spatial = tuple(x.shape[1:-1])
    window, shift, padded, mask = block.geometry(spatial)
    axes = tuple(range(1, len(spatial) + 1))
    y = window_utils.pad_to_window(block.norm_before(x), spatial, window)
    if any(shift):
        y = ops.roll(y, shift=[-s for s in shift], axis=axes)
    windows = window_utils.window_partition(y, padded, window)
    windows = block.attention(windows, attention_mask=mask,
                              window_size=window if window != block.window_size else None)
    y = window_utils.window_reverse(windows, padded, window)
    if any(shift):
        y = ops.roll(y, shift=list(shift), axis=axes)
    y = y[(slice(None),) + tuple(slice(0, e) for e in spatial)]
    x = x + y
    y = keras.activations.gelu(block.mlp_dense_1(block.norm_after(x)), approximate=False)
    return x + block.mlp_dense_2(y)


@pytest.mark.parametrize(
    "spatial,window,shift",
    [((6, 6), (3, 3), (1, 1)),  # foldable, shifted
     ((5, 7), (2, 2), (1, 1)),  # padded: the norm's affine cannot be folded
     ((2, 4, 4), (2, 2, 2), (1, 1, 1)),  # video windows
     ((2, 2), (2, 2), (0, 0))],  # 8 tokens < 24 qkv outputs: the affine stays on the tokens
)
def test_block_matches_plain_keras_outputs_and_gradients(spatial, window, shift):
    block = SwinTransformerBlock(8, 2, window, shift)
    x = tf.constant(_rng(7).normal(0, 1, (2,) + spatial + (8,)).astype("float32"))
    block.build(x.shape)
    rng = _rng(8)
    for norm in (block.norm_before, block.norm_after):
        norm.set_weights([rng.normal(1, 0.2, 8).astype("float32"),
                          rng.normal(0, 0.2, 8).astype("float32")])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        fast = block(x, training=True)
        plain = _reference_block(block, x)
        weights = rng.normal(0, 1, fast.shape).astype("float32")
        fast_loss = tf.reduce_sum(fast * weights)
        plain_loss = tf.reduce_sum(plain * weights)
    np.testing.assert_allclose(fast, plain, atol=1e-5)
    variables = [x] + block.trainable_variables
    for got, expected in zip(tape.gradient(fast_loss, variables),
                             tape.gradient(plain_loss, variables)):
        np.testing.assert_allclose(tf.convert_to_tensor(got), tf.convert_to_tensor(expected),
                                   atol=1e-4, rtol=1e-4)


def test_block_under_mixed_bfloat16_stays_close_to_float32():
    x = _rng(9).normal(0, 1, (2, 6, 6, 8)).astype("float32")
    block = SwinTransformerBlock(8, 2, (3, 3), (1, 1))
    reference = block(x).numpy()
    mixed = SwinTransformerBlock(8, 2, (3, 3), (1, 1), dtype="mixed_bfloat16")
    mixed.build(x.shape)
    mixed.set_weights(block.get_weights())
    out = mixed(x)
    assert out.dtype == "bfloat16"
    np.testing.assert_allclose(ops.cast(out, "float32"), reference, atol=0.1)

"""Depth decoder layers: shapes at several sizes and pyramid depths, round trips, hand-computed values."""

import math

import numpy as np
import pytest

from florence_keras.layers.depth_decoder import DepthDecoder
from florence_keras.layers.depth_fusion_block import DepthFusionBlock
from florence_keras.layers.depth_upsampling_head import DepthUpsamplingHead
from tests.test_case import random_images
from tests.test_case import run_serialization_test


def _conv_same(x, kernel, bias):
    """NumPy 'same' convolution (odd kernel), NHWC."""
    k = kernel.shape[0]
    pad = k // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for i in range(k):
        for j in range(k):
            out += padded[:, i:i + x.shape[1], j:j + x.shape[2]] @ kernel[i, j]
    return out + bias


def _pyramid(batch, height, width, levels, channels=4):
    return [random_images(batch, math.ceil(height / 4 / 2**i), math.ceil(width / 4 / 2**i), channels * 2**i, seed=i)
            for i in range(levels)]


@pytest.mark.parametrize("height,width,levels", [(32, 32, 2), (64, 96, 4), (40, 24, 3)])
def test_decoder_output_is_positive_depth_at_image_size(height, width, levels):
    images = random_images(2, height, width)
    decoder = DepthDecoder(channels=8, min_depth=0.5, max_depth=20.0)
    depth = np.asarray(decoder([images] + _pyramid(2, height, width, levels)))
    assert depth.shape == (2, height, width) and depth.dtype == np.float32
    assert depth.min() >= 0.5 and depth.max() <= 20.0
    assert len(decoder.fusions) == levels - 1


def test_round_trips():
    images = random_images(1, 32, 32)
    run_serialization_test(DepthDecoder(channels=8, num_upsamplings=2, min_depth=0.2, max_depth=50.0),
                           [images] + _pyramid(1, 32, 32, 3))
    run_serialization_test(DepthFusionBlock(8), [random_images(1, 2, 3, 8), random_images(1, 4, 5, 6)])
    run_serialization_test(DepthUpsamplingHead(8, num_upsamplings=1), [random_images(1, 4, 4, 8), images])


def test_fusion_block_matches_numpy():
    # Same-size maps: the resize is the identity, so the block is 1x1 conv + residual unit of two 3x3 convs.
    block = DepthFusionBlock(3)
    coarse, lateral = random_images(1, 5, 4, 3, seed=1), random_images(1, 5, 4, 2, seed=2)
    out = np.asarray(block([coarse, lateral]))
    (wl, bl), (w1, b1), (w2, b2) = (layer.get_weights() for layer in (block.lateral, block.refine_1, block.refine_2))
    x = coarse + lateral @ wl[0, 0] + bl
    expected = x + _conv_same(np.maximum(_conv_same(np.maximum(x, 0), w1, b1), 0), w2, b2)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_head_with_zero_weights_predicts_the_geometric_mean():
    head = DepthUpsamplingHead(8, num_upsamplings=2, min_depth=0.1, max_depth=100.0)
    images = random_images(2, 24, 16)
    head([random_images(2, 6, 4, 8), images])
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    np.testing.assert_allclose(np.asarray(head([random_images(2, 6, 4, 8), images])), math.sqrt(0.1 * 100.0),
                               rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="channels"):
        DepthDecoder(channels=0)
    with pytest.raises(ValueError, match="min_depth"):
        DepthDecoder(min_depth=5.0, max_depth=1.0)
    with pytest.raises(ValueError, match="num_upsamplings"):
        DepthUpsamplingHead(8, num_upsamplings=-1)
    with pytest.raises(ValueError, match="pyramid level"):
        DepthDecoder(channels=8)([random_images(1, 8, 8)])


def test_clamp_is_straight_through():
    import tensorflow as tf

    head = DepthUpsamplingHead(8, num_upsamplings=0, min_depth=1.0, max_depth=4.0)
    features, images = random_images(1, 4, 4, 8), random_images(1, 4, 4)
    head([features, images])
    kernel, bias = head.output_conv.get_weights()
    head.output_conv.set_weights([np.zeros_like(kernel), np.full_like(bias, 30.0)])  # far beyond max_depth
    with tf.GradientTape() as tape:
        depth = head([features, images])
        loss = tf.reduce_mean(tf.math.log(depth))
    np.testing.assert_allclose(depth.numpy(), 4.0, rtol=1e-6)  # clamped
    gradient = tape.gradient(loss, head.output_conv.bias)
    np.testing.assert_allclose(gradient.numpy(), [1.0], rtol=1e-5)  # d mean(log depth) / d bias, not 0


@pytest.mark.parametrize("name", [
    "florence_keras.layers.depth_decoder", "florence_keras.layers.depth_fusion_block",
    "florence_keras.losses.scale_invariant_log_loss", "florence_keras.evaluation.depth_metrics",
])
def test_depth_docstring_examples_run(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

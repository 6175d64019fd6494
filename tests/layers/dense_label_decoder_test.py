"""DenseLabelDecoder: a NumPy forward of the whole decoder, shapes at several sizes, round trip, bad arguments."""

import math

import numpy as np
import pytest

from florence_keras.layers.dense_label_decoder import DenseLabelDecoder
from tests.layers.dyhead_numpy import conv_same as _conv_same
from tests.test_case import random_images
from tests.test_case import run_serialization_test


def _resize_axis(x, size, axis):
    """Bilinear resampling of one axis with half-pixel centres (TensorFlow's `resize`, no antialiasing)."""
    length = x.shape[axis]
    source = np.clip((np.arange(size) + 0.5) * length / size - 0.5, 0, length - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, length - 1)
    weight = (source - low).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
    return np.take(x, low, axis=axis) * (1 - weight) + np.take(x, high, axis=axis) * weight


def _resize(x, height, width):
    return _resize_axis(_resize_axis(x, height, 1), width, 2)


def _layer_norm(x, gamma, beta, epsilon=1e-5):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + epsilon) * gamma + beta


def _numpy_decoder(decoder, images, levels):
    """An independent forward (inference): per level LayerNorm + 1x1 conv; from the coarsest down, resize to the
    finer level + its projection, then 3x3 conv + BatchNorm (moving statistics) + ReLU; one more unit; per
    upsampling x2 bilinear + unit; resize to the image; 1x1 to the logits."""
    def unit(index, x):
        gamma, beta, mean, variance = decoder.refine_norms[index].get_weights()
        x = _conv_same(x, *decoder.refine_convs[index].get_weights())
        return np.maximum((x - mean) / np.sqrt(variance + 1e-3) * gamma + beta, 0)

    projected = []
    for norm, lateral, level in zip(decoder.level_norms, decoder.lateral_convs, levels):
        kernel, bias = lateral.get_weights()
        projected.append(_layer_norm(level, *norm.get_weights()) @ kernel[0, 0] + bias)
    x, index = projected[-1], 0
    for lateral in reversed(projected[:-1]):
        x = unit(index, _resize(x, lateral.shape[1], lateral.shape[2]) + lateral)
        index += 1
    x = unit(index, x)
    for index in range(index + 1, len(decoder.refine_convs)):
        x = unit(index, _resize(x, 2 * x.shape[1], 2 * x.shape[2]))
    x = _resize(x, images.shape[1], images.shape[2])
    kernel, bias = decoder.logits.get_weights()
    return x @ kernel[0, 0] + bias


def _pyramid(batch, height, width, levels, channels=4):
    return [random_images(batch, math.ceil(height / 4 / 2**i), math.ceil(width / 4 / 2**i), channels * 2**i, seed=i)
            for i in range(levels)]


def _randomise(layer, seed=0):
    """Every weight random (LayerNorm and BatchNorm scales, shifts and statistics too: nothing at an identity)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([
        (np.abs(rng.normal(1.0, 0.3, w.shape)) if "variance" in w.path else rng.normal(0.0, 0.3, w.shape))
        .astype("float32") for w in layer.weights])


@pytest.mark.parametrize("height,width,levels", [(16, 16, 2), (24, 40, 3)])
def test_decoder_matches_numpy(height, width, levels):
    images, pyramid = random_images(2, height, width), _pyramid(2, height, width, levels)
    decoder = DenseLabelDecoder(3, channels=8)
    decoder([images] + pyramid)
    _randomise(decoder)  # LayerNorm scales and biases too: nothing left at an identity
    logits = np.asarray(decoder([images] + pyramid))
    assert logits.shape == (2, height, width, 3) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, _numpy_decoder(decoder, images, pyramid), atol=2e-4)


@pytest.mark.parametrize("height,width,levels", [(32, 32, 1), (40, 24, 4), (36, 20, 2)])
def test_logits_at_the_image_size(height, width, levels):
    # CoSwin rounds every downsampling up: a map of ceil(size / stride) is resized back to the exact size.
    images = random_images(1, height, width)
    decoder = DenseLabelDecoder(5, channels=16, num_upsamplings=2)
    assert tuple(decoder([images] + _pyramid(1, height, width, levels)).shape) == (1, height, width, 5)
    assert len(decoder.refine_convs) == levels + 2
    assert [int(conv.filters) for conv in decoder.refine_convs[levels:]] == [10, 8]  # 2/3 of 16, then at least 8


def test_bfloat16_policy_keeps_float32_logits():
    images = random_images(1, 16, 16)
    decoder = DenseLabelDecoder(3, channels=8, dtype="mixed_bfloat16")
    logits = decoder([images] + _pyramid(1, 16, 16, 2))
    import keras

    assert keras.backend.standardize_dtype(logits.dtype) == "float32"


def test_training_mode_uses_batch_statistics():
    images, pyramid = random_images(2, 16, 16), _pyramid(2, 16, 16, 2)
    decoder = DenseLabelDecoder(3, channels=8)
    inference = np.asarray(decoder([images] + pyramid))
    training = np.asarray(decoder([images] + pyramid, training=True))
    assert np.abs(inference - training).max() > 1e-3


def test_round_trips():
    images = random_images(1, 32, 32)
    run_serialization_test(DenseLabelDecoder(4, channels=8, num_upsamplings=1), [images] + _pyramid(1, 32, 32, 3))


def test_bad_arguments():
    for bad in (1, 2.0, True, None):
        with pytest.raises(ValueError, match="num_classes"):
            DenseLabelDecoder(bad)
    with pytest.raises(ValueError, match="channels"):
        DenseLabelDecoder(3, channels=0)
    with pytest.raises(ValueError, match="num_upsamplings"):
        DenseLabelDecoder(3, num_upsamplings=-1)
    with pytest.raises(ValueError, match="pyramid level"):
        DenseLabelDecoder(3, channels=8)([random_images(1, 8, 8)])


def test_docstring_example_runs():
    import doctest

    from florence_keras.layers import dense_label_decoder

    result = doctest.testmod(dense_label_decoder, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

"""FlorenceImageConverter: channels, normalisation by hand, and the same result eagerly and in tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from florence_keras.models.florence_image_converter import IMAGENET_MEAN
from florence_keras.models.florence_image_converter import IMAGENET_STD
from florence_keras.models.florence_image_converter import FlorenceImageConverter


def _by_hand(rgb):
    return (rgb.astype("float32") / 255.0 - np.array(IMAGENET_MEAN, "float32")) / np.array(IMAGENET_STD, "float32")


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_normalisation_and_channels_by_hand(channels):
    rng = np.random.default_rng(channels)
    image = rng.integers(0, 256, size=(2, 5, 6, channels)).astype("uint8")
    rgb = {1: np.repeat(image, 3, -1), 2: np.repeat(image[..., :1], 3, -1), 3: image, 4: image[..., :3]}[channels]
    out = np.asarray(FlorenceImageConverter(image_size=None)(image))
    np.testing.assert_allclose(out, _by_hand(rgb), atol=1e-5)


def test_eager_equals_tf_data():
    converter = FlorenceImageConverter(image_size=(8, 8))
    images = np.random.default_rng(0).integers(0, 256, size=(3, 11, 9, 4)).astype("uint8")
    eager = np.asarray(converter(images))
    mapped = next(iter(tf.data.Dataset.from_tensor_slices(images).batch(3).map(converter))).numpy()
    assert eager.shape == (3, 8, 8, 3)
    np.testing.assert_allclose(mapped, eager, atol=1e-6)


def test_bad_channel_count_is_named():
    with pytest.raises(ValueError, match=r"Received shape: \(1, 4, 4, 5\)"):
        FlorenceImageConverter(image_size=None)(np.zeros((1, 4, 4, 5), "uint8"))

"""Resizing and normalisation of images for Florence (the preset's image converter)."""

import keras
import tensorflow as tf
from keras import ops
from keras_hub.layers import ImageConverter

from florence_keras.models.florence_backbone import FlorenceBackbone
from florence_keras.models.keras_hub_internals import preprocessing_function

# ImageNet statistics, as UniCL's released code uses [ours: the paper is silent].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def standardize_channels(images):
    """Makes images RGB: 1 channel is repeated, an alpha channel (2 or 4) dropped.

    Works on `(H, W, C)` or `(B, H, W, C)` tensors (and `(H, W)` grayscale);
    other channel counts raise a `ValueError` naming the shape. TensorFlow code
    (preprocessing): it takes NumPy arrays or TensorFlow tensors, under every
    Keras backend and inside `tf.data`.
    """
    rank = len(images.shape)
    if rank == 2:
        images = images[..., None]
        rank = 3
    if rank not in (3, 4):
        raise ValueError(
            "Images must be (H, W), (H, W, C) or (B, H, W, C). "
            f"Received shape: {tuple(images.shape)}"
        )
    channels = images.shape[-1]
    if channels == 3:
        return images
    if channels in (1, 2):
        return tf.concat([images[..., :1]] * 3, axis=-1)
    if channels == 4:
        return images[..., :3]
    raise ValueError(
        "Images need 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels. "
        f"Received shape: {tuple(images.shape)}"
    )


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceImageConverter(ImageConverter):
    """Turns raw images into Florence inputs: RGB, resized, normalised.

    Pixel values are expected in `[0, 255]` whatever the dtype (the keras-hub
    convention). Grayscale and RGBA are converted to RGB first. The image is
    centre-cropped to the target aspect ratio, resized (bicubic, antialiased),
    then normalised with `(x / 255 - mean) / std`. It runs eagerly, inside
    `tf.data` and inside an exported graph alike (keras-hub's converter).

    Args:
        image_size: `(height, width)`, or None to normalise without resizing.
        mean: per-channel mean of `[0, 1]` images. Defaults to ImageNet's.
        std: per-channel standard deviation. Defaults to ImageNet's.
        **kwargs: passed to `keras_hub.layers.ImageConverter`.

    Example:
    >>> import numpy as np
    >>> converter = FlorenceImageConverter(image_size=(32, 32))
    >>> tuple(converter(np.zeros((2, 50, 40, 4), "uint8")).shape)
    (2, 32, 32, 3)
    """

    backbone_cls = FlorenceBackbone

    def __init__(self, image_size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD, **kwargs):
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(
                f"`mean` and `std` need 3 values, std > 0. Received: mean={mean}, std={std}"
            )
        kwargs.pop("scale", None)
        kwargs.pop("offset", None)
        kwargs.setdefault("interpolation", "bicubic")
        kwargs.setdefault("antialias", True)
        kwargs.setdefault("crop_to_aspect_ratio", True)
        super().__init__(
            image_size=None if image_size is None else tuple(image_size),
            scale=[1.0 / (255.0 * s) for s in std],
            offset=[-m / s for m, s in zip(mean, std)],
            **kwargs,
        )
        self.mean = tuple(mean)
        self.std = tuple(std)

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            return ops.stack([self.call(x) for x in inputs])
        return super().call(self._rgb_float32(inputs))

    @preprocessing_function
    def _rgb_float32(self, images):
        # TensorFlow ops inside keras-hub's preprocessing wrapper, like the resizing that follows:
        # the same code eagerly (any backend) and inside tf.data, where backend ops cannot run.
        return tf.cast(standardize_channels(images), tf.float32)

    def normalizer(self):
        """A copy that only converts channels and normalises (no resizing).

        For pipelines that already crop and resize (training augmentation):
        the normalisation constants stay those of this converter.
        """
        return self.__class__.from_config(dict(self.get_config(), image_size=None))

    def get_config(self):
        config = super().get_config()
        for key in ("scale", "offset"):
            config.pop(key, None)
        config.update({"mean": self.mean, "std": self.std})
        return config

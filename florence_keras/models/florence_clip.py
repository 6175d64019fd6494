"""FlorenceCLIP: the Florence dual encoder with its preprocessing, as a keras-hub Task."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from keras_hub.models import Task

from florence_keras.models import preset_registry
from florence_keras.models.florence_backbone import FlorenceBackbone
from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor


# What keras-hub raises for a damaged preset directory: a config of the wrong types (TypeError, AttributeError,
# IndexError), missing entries (KeyError), unreadable files (OSError), a damaged HDF5 weights file (h5py raises
# RuntimeError), tokenizer tables that can't be built or sizes that can't be allocated (tf.errors.OpError).
_DAMAGED_PRESET_ERRORS = (KeyError, OSError, TypeError, AttributeError, IndexError, RuntimeError, tf.errors.OpError)


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceCLIP(Task):
    """Florence's image-text model: encode images and texts into one space.

    Args:
        backbone: a `FlorenceBackbone`.
        preprocessor: a `FlorenceCLIPPreprocessor` (tokenizer + image converter).

    Calling the task on `{"images": normalised float, "token_ids": int}` returns
    the backbone's dict (unit-norm `image_embeddings`, `text_embeddings`, and
    `logit_scale`). `encode_images` / `encode_texts` take raw inputs.

    Example:
    >>> clip = FlorenceCLIP.from_preset("florence_tiny", load_weights=False)  # doctest: +SKIP
    >>> clip.encode_texts(["a red circle"]).shape  # doctest: +SKIP
    TensorShape([1, 512])
    """

    backbone_cls = FlorenceBackbone
    preprocessor_cls = FlorenceCLIPPreprocessor

    def __init__(self, backbone, preprocessor=None, **kwargs):
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        # === Functional model ===
        inputs = backbone.input
        outputs = backbone(inputs)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

    def _require_preprocessor(self):
        if self.preprocessor is None:
            raise ValueError("This FlorenceCLIP has no preprocessor; pass token ids / normalised images.")

    def encode_images(self, images, batch_size=32):
        """Unit-norm embeddings `(B, D)` of raw images.

        Args:
            images: uint8 or float `(B, H, W, C)` / `(H, W, C)` with values in
                `[0, 255]` and 1, 3 or 4 channels, or a list of such images of
                different sizes. The preset's image converter resizes and
                normalises them.
            batch_size: images per forward pass.
        """
        self._require_preprocessor()
        if isinstance(images, (list, tuple)):
            if not images:
                raise ValueError("`images` is an empty list.")
            converted = [self.preprocessor.image_converter(np.asarray(im)) for im in images]
            converted = [c[None] if len(c.shape) == 3 else c for c in converted]
            pixels = ops.concatenate(converted, axis=0)
        else:
            images = ops.convert_to_tensor(images)
            if images.shape[0] == 0:
                raise ValueError("`images` is an empty batch.")
            pixels = self.preprocessor.image_converter(images)
            if len(pixels.shape) == 3:
                pixels = pixels[None]
        chunks = [
            self.backbone.embed_images(pixels[i : i + batch_size])
            for i in range(0, int(pixels.shape[0]), batch_size)
        ]
        return ops.concatenate(chunks, axis=0)

    def encode_texts(self, texts, batch_size=256):
        """Unit-norm embeddings `(B, D)` of strings or token ids.

        Args:
            texts: a string, a list of strings, or int token ids
                `(B, sequence_length)`.
            batch_size: texts per forward pass.
        """
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(texts, (list, tuple)) and texts and isinstance(texts[0], (bytes, str)):
            self._require_preprocessor()
            token_ids = self.preprocessor.tokenize(tf.constant(list(texts)))
        else:
            token_ids = ops.convert_to_tensor(texts)
            if "int" not in str(token_ids.dtype):
                raise ValueError(
                    f"`texts` must be strings or int token ids. Received dtype: {token_ids.dtype}"
                )
            expected = self.backbone.sequence_length
            if len(token_ids.shape) != 2 or token_ids.shape[1] != expected:
                raise ValueError(
                    f"Token ids must have shape (batch, {expected}). Received: {tuple(token_ids.shape)}"
                )
        if token_ids.shape[0] == 0:
            raise ValueError("`texts` is an empty batch.")
        chunks = [
            self.backbone.embed_texts(token_ids[i : i + batch_size])
            for i in range(0, int(token_ids.shape[0]), batch_size)
        ]
        return ops.concatenate(chunks, axis=0)

    def similarity(self, images, texts):
        """Cosine similarities `(num_images, num_texts)` of raw images and texts."""
        return ops.matmul(self.encode_images(images), ops.transpose(self.encode_texts(texts)))

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Loads a FlorenceCLIP from a preset name, directory or handle.

        Args:
            preset: an architecture preset (`florence_tiny` ... `florence_huge`,
                random init), a registered trained preset (see
                `florence_keras.models.preset_registry.list_presets()`), a
                preset directory, or a keras-hub handle (`hf://`, `kaggle://`).
            load_weights: bool; ignored for architecture presets.
            **kwargs: for architecture presets, `image_size`, `dtype`.

        Raises:
            ValueError: an unknown name, or a preset directory that is incomplete, damaged (bad JSON, a config
                of the wrong types or sizes, unreadable weights or tokenizer files) or refused by Keras safe mode
                (a `Lambda` layer or a class that is not registered).
        """
        resolved = preset_registry.resolve(preset)
        if resolved.kind == "architecture":
            return preset_registry.build_architecture_preset(cls, preset, **kwargs)
        preset_registry.validate_preset_dir(resolved.path, load_weights)
        try:
            return super().from_preset(resolved.path, load_weights=load_weights, **kwargs)
        except _DAMAGED_PRESET_ERRORS as e:
            raise ValueError(f"Could not load preset {preset!r} (damaged or incompatible): {e!r}"[:2000]) from e

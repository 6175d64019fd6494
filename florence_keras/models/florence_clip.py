"""FlorenceCLIP: the Florence dual encoder with its preprocessing, as a keras-hub Task."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from florence_keras.models.florence_backbone import FlorenceBackbone
from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
from florence_keras.models.florence_task import FlorenceTask


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceCLIP(FlorenceTask):
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
            if len(token_ids.shape) != 2 or not 1 <= token_ids.shape[1] <= expected:
                raise ValueError(
                    f"Token ids must have shape (batch, L) with 1 <= L <= {expected}. "
                    f"Received: {tuple(token_ids.shape)}"
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

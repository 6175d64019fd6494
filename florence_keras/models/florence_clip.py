"""FlorenceCLIP: the Florence dual encoder with its preprocessing, as a keras-hub Task."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from florence_keras.losses.unicl_loss import unicl_loss
from florence_keras.losses.unicl_loss_wrapper import UniCLLoss
from florence_keras.models.florence_backbone import FlorenceBackbone
from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
from florence_keras.models.florence_task import FlorenceTask
from florence_keras.models.prompt_ensemble import prompt_ensemble_embeddings


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceCLIP(FlorenceTask):
    """Florence's image-text model: encode images and texts into one space.

    Args:
        backbone: a `FlorenceBackbone`.
        preprocessor: a `FlorenceCLIPPreprocessor` (tokenizer + image converter).

    Calling the task on `{"images": normalised float, "token_ids": int}` returns
    the backbone's dict (unit-norm `image_embeddings`, `text_embeddings`, and
    `logit_scale`). `encode_images` / `encode_texts` take raw inputs.

    Training: the task owns its loss, UniCL (SPEC §1). `compile()` defaults to
    `AdamWConfig()`'s AdamW at a constant rate and `UniCLLoss(cross_replica=True)`,
    so `fit` under a `tf.distribute` strategy contrasts every anchor with the
    whole global batch. `fit` / `evaluate` take batches `(x, labels)` where `x` is
    either raw `{"images": (B, H, W, C) in [0, 255], "texts": strings (B,)}` (the
    preprocessor converts and tokenises them) or model inputs `{"images":
    normalised float, "token_ids": int32}` (passed through), and `labels` are
    int64 keys `(B,)`: equal keys are positives of each other (identical texts,
    or images of one class; see `florence_keras.data.labels`). The custom
    training system (`florence_keras.training.UniCLTrainer`) drives the same
    loss through `replica_loss` (and, for the gradient cache, `embed` +
    `loss_from_embeddings`), passing its replica context explicitly.

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

    # ------------------------------------------------------------------------------------------------
    # Training: the task's loss, for Keras `fit` and for the training system.

    def default_loss(self):
        """`UniCLLoss(cross_replica=True)`: under a `tf.distribute` strategy the embeddings of all replicas
        are gathered, so negatives span the global batch. Any loss called as `loss(labels, outputs,
        sample_weight)` with the backbone's output dict can replace it in `compile(loss=...)`."""
        return UniCLLoss(cross_replica=True)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss (UniCL by default) of the backbone outputs `y_pred` against labels `y`.

        Keras's `fit` / `evaluate` call this once per replica; the value follows Keras's convention (the
        replica's share of the global mean). Layer losses (`self.losses`), if any, are added.
        """
        del x, training
        if y is None:
            raise ValueError(
                "FlorenceCLIP's loss needs labels: give `fit` / `evaluate` `(x, labels)` batches with int64 "
                "label keys (equal keys are positives).")
        return self.with_layer_losses(self.task_loss_or_raise()(y, y_pred, sample_weight))

    def preprocess_samples(self, x, y=None, sample_weight=None):
        """Raw `{"images", "texts"}` go through the preprocessor; `{"images", "token_ids"}` pass unchanged."""
        if isinstance(x, dict) and "token_ids" in x:
            return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)
        return super().preprocess_samples(x, y, sample_weight)

    def embed(self, x, training=False):
        """The per-example outputs the loss reads: unit-norm float32 `image_embeddings`, `text_embeddings`.

        Args:
            x: `{"images": normalised float (B, H, W, 3), "token_ids": int (B, L)}`.
            training: bool (DropPath and dropout are active when True).

        Returns:
            dict of `(B, projection_dim)` tensors.
        """
        return {
            "image_embeddings": self.backbone.embed_images(x["images"], training=training),
            "text_embeddings": self.backbone.embed_texts(x["token_ids"], training=training),
        }

    def loss_from_embeddings(self, embeddings, y, replica_context=None, block_size=None):
        """This replica's share of the UniCL loss of (possibly gathered) embeddings `embed` returned.

        Args:
            embeddings: the dict `embed` returns, for this replica's batch.
            y: int64 label keys `(B,)`.
            replica_context: None (the batch is the whole batch) or the caller's replica context
                (`tf.distribute.get_replica_context()` inside `strategy.run`): embeddings and labels are
                gathered across its replicas (`florence_keras.losses.unicl_loss`).
            block_size: optional int, anchors per block of the loss (the gradient cache sets it).

        Returns:
            float32 scalar: Σ over local anchors of ℓ_i / global batch size.
        """
        return unicl_loss(
            embeddings["image_embeddings"], embeddings["text_embeddings"], y, self.backbone.logit_scale(),
            block_size=block_size, replica_context=replica_context)

    def replica_loss(self, x, y, replica_context=None, training=True):
        """`loss_from_embeddings(embed(x, training), y, replica_context)`: one replica's step loss."""
        return self.loss_from_embeddings(self.embed(x, training=training), y, replica_context=replica_context)

    def training_scalars(self):
        """Scalars worth logging while training: `{"logit_scale": s}`."""
        return {"logit_scale": self.backbone.logit_scale()}

    def predict_step(self, *args, **kwargs):
        """Keras's predict step without the scalar `logit_scale`: `predict` returns per-example outputs.

        `predict` concatenates each output over batches; a scalar has no batch axis (TensorFlow
        stacked it into one value per batch, JAX refuses). Read the scale with `backbone.logit_scale()`.
        The arguments are the backend's own (`(data)`, or `(state, data)` under JAX).
        """
        result = super().predict_step(*args, **kwargs)
        if isinstance(result, tuple):  # JAX: (outputs, non_trainable_variables)
            outputs, state = result
            return {k: v for k, v in outputs.items() if k != "logit_scale"}, state
        return {k: v for k, v in result.items() if k != "logit_scale"}

    # ------------------------------------------------------------------------------------------------
    # Inference on raw inputs.

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

    def class_embeddings(self, class_names, templates=("a photo of a {}.",), batch_size=256):
        """Zero-shot classifier weights `[C, D]`: prompt-ensembled, unit-norm text embeddings per class.

        Row c = normalise(mean_t normalise(encode_texts(t.format(class_names[c])))) (CLIP's prompt
        ensemble, SPEC §4). See `prompt_ensemble_embeddings`.
        """
        return prompt_ensemble_embeddings(
            lambda texts: self.encode_texts(texts, batch_size=batch_size), class_names, templates,
            batch_size=batch_size)

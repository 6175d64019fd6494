"""`UniCLLoss`: the Keras `Loss` wrapper around `unicl_anchor_losses`."""

import keras
from keras import ops

from florence_keras.losses.unicl_loss import unicl_anchor_losses

_REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", "none", None)
_OUTPUT_KEYS = ("image_embeddings", "text_embeddings", "logit_scale")


@keras.saving.register_keras_serializable(package="florence_keras")
class UniCLLoss(keras.losses.Loss):
    """UniCL contrastive loss as a Keras `Loss` (SPEC §1).

    `y_true` are the integer labels [b] (texts / classes hashed to int64 keys) and `y_pred` is the
    `FlorenceBackbone` output dict `{"image_embeddings": [b, D], "text_embeddings": [b, D],
    "logit_scale": scalar}`. `call` returns the per-example terms ℓ_i = ℓ^i2t_i + ℓ^t2i_i (float32), so the
    default `"sum_over_batch_size"` reduction gives L = L_i2t + L_t2i.

    Unlike the base `Loss`, labels are never cast to the loss dtype (63-bit hash keys would collide as
    floats). Inside a `tf.distribute` replica context negatives span the global batch (see
    `florence_keras.losses.unicl_loss`); the reduced value is then the mean over this replica's anchors —
    divide by the number of replicas (as Keras's trainer does with `scale_loss_for_distribution`) to get the
    replica's share of the global loss. Custom loops can call `unicl_loss`, which returns the share.

    Args:
        name: name of the loss. Defaults to `"unicl_loss"`.
        reduction: one of `"sum_over_batch_size"` (default), `"mean"`, `"sum"`,
            `"mean_with_sample_weight"`, `"none"` or `None`.
        dtype: accepted for Keras compatibility; must be None or "float32" (the loss is always float32).

    Example:

    >>> import numpy as np
    >>> u = np.eye(2, dtype="float32")
    >>> outputs = {"image_embeddings": u, "text_embeddings": u, "logit_scale": np.float32(1.0)}
    >>> round(float(UniCLLoss()(np.array([7, 9]), outputs)), 4)
    0.6265
    """

    def __init__(self, name="unicl_loss", reduction="sum_over_batch_size", dtype=None):
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f"`reduction` must be one of {_REDUCTIONS}. Received: reduction={reduction!r}"
            )
        if dtype not in (None, "float32"):
            raise ValueError(
                f"UniCLLoss always computes in float32. Received: dtype={dtype!r}"
            )
        super().__init__(name=name, reduction=reduction, dtype="float32")

    def call(self, y_true, y_pred):
        if not isinstance(y_pred, dict) or any(key not in y_pred for key in _OUTPUT_KEYS):
            keys = sorted(y_pred) if isinstance(y_pred, dict) else type(y_pred).__name__
            raise ValueError(
                f"`y_pred` must be a dict with keys {_OUTPUT_KEYS} (FlorenceBackbone outputs). "
                f"Received: y_pred={keys}"
            )
        anchor_losses, _ = unicl_anchor_losses(
            y_pred["image_embeddings"], y_pred["text_embeddings"], y_true, y_pred["logit_scale"]
        )
        return anchor_losses

    def __call__(self, y_true, y_pred, sample_weight=None):
        with keras.name_scope(self.name):
            losses = self.call(ops.convert_to_tensor(y_true), y_pred)
            if sample_weight is not None:
                sample_weight = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
                losses = losses * ops.reshape(sample_weight, (-1,))
            if self.reduction in ("none", None):
                return losses
            total = ops.sum(losses)
            if self.reduction == "sum":
                return total
            if self.reduction == "mean_with_sample_weight" and sample_weight is not None:
                return total / ops.maximum(ops.sum(sample_weight), 1e-12)
            return total / ops.cast(ops.shape(losses)[0], "float32")

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "dtype": None}

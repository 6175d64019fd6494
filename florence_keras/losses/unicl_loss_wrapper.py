"""`UniCLLoss`: the Keras `Loss` wrapper around `unicl_anchor_losses`."""

import keras
from keras import ops

from florence_keras.losses.unicl_loss import unicl_anchor_losses

_REDUCTIONS = ("sum_over_batch_size", "mean", "sum", "mean_with_sample_weight", "none", None)
_OUTPUT_KEYS = ("image_embeddings", "text_embeddings", "logit_scale")


def current_replica_context():
    """The `tf.distribute` replica context the caller runs in (`None` on other backends).

    With the TensorFlow backend outside any strategy this is the default context (one replica). Inside
    `strategy.scope()` but outside `strategy.run` there is no replica context: a gather across replicas is
    impossible there, so this raises rather than silently computing a per-replica loss.

    On JAX and torch there are no `tf.distribute` replicas: Keras's distribution API hands the loss the
    global batch (one logical array), so there is nothing to gather and this returns None.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf  # Lazily: only the TensorFlow backend has replica contexts.

    context = tf.distribute.get_replica_context()
    if context is None:
        raise ValueError(
            "`cross_replica=True` needs a replica context: call the loss inside `strategy.run` (Keras's "
            "`fit` / `evaluate` do), not in the strategy's cross-replica context."
        )
    return context


@keras.saving.register_keras_serializable(package="florence_keras")
class UniCLLoss(keras.losses.Loss):
    """UniCL contrastive loss as a Keras `Loss` (SPEC §1).

    `y_true` are the integer labels [b] (texts / classes hashed to int64 keys, or class indices) and
    `y_pred` is the `FlorenceBackbone` output dict `{"image_embeddings": [b, D], "text_embeddings": [b, D],
    "logit_scale": scalar}`. `call` returns the per-example terms ℓ_i = ℓ^i2t_i + ℓ^t2i_i (float32), so the
    default `"sum_over_batch_size"` reduction gives L = L_i2t + L_t2i.

    Unlike the base `Loss`, labels are never cast to the loss dtype (63-bit hash keys would collide as
    floats).

    Distribution is explicit: with `cross_replica=True` the loss all-gathers the embeddings and labels
    of the replicas of the context it is called in (`current_replica_context()`, e.g. inside Keras's
    `fit` under `MirroredStrategy`), so negatives span the global batch; with `cross_replica=False`
    (default) the batch it is given is the whole batch. The mean reductions then follow Keras's loss
    convention under `tf.distribute`: the local mean is divided by the number of replicas
    (`keras.losses.Loss` does the same), so that the replicas' values sum to the global loss L and their
    summed gradients (the optimizer's all-reduce) are the single-device gradient of the global batch.

    Args:
        cross_replica: bool; gather across the replicas of the calling replica context. Defaults to
            False.
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

    def __init__(self, cross_replica=False, name="unicl_loss", reduction="sum_over_batch_size", dtype=None):
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f"`reduction` must be one of {_REDUCTIONS}. Received: reduction={reduction!r}"
            )
        if dtype not in (None, "float32"):
            raise ValueError(
                f"UniCLLoss always computes in float32. Received: dtype={dtype!r}"
            )
        if not isinstance(cross_replica, bool):
            raise ValueError(f"`cross_replica` must be a bool. Received: cross_replica={cross_replica!r}")
        super().__init__(name=name, reduction=reduction, dtype="float32")
        self.cross_replica = cross_replica

    def call(self, y_true, y_pred):
        if not isinstance(y_pred, dict) or any(key not in y_pred for key in _OUTPUT_KEYS):
            keys = sorted(y_pred) if isinstance(y_pred, dict) else type(y_pred).__name__
            raise ValueError(
                f"`y_pred` must be a dict with keys {_OUTPUT_KEYS} (FlorenceBackbone outputs). "
                f"Received: y_pred={keys}"
            )
        anchor_losses, _ = unicl_anchor_losses(
            y_pred["image_embeddings"], y_pred["text_embeddings"], y_true, y_pred["logit_scale"],
            replica_context=current_replica_context() if self.cross_replica else None,
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
                mean = total / ops.maximum(ops.sum(sample_weight), 1e-12)
            else:
                mean = total / ops.cast(ops.shape(losses)[0], "float32")
            return _scale_for_distribution(mean)

    def get_config(self):
        return {"cross_replica": self.cross_replica, "name": self.name, "reduction": self.reduction,
                "dtype": None}


def _scale_for_distribution(value):
    """Keras's loss convention under `tf.distribute`: the local mean divided by the number of replicas."""
    if keras.backend.backend() != "tensorflow":
        return value
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return value / float(replicas) if replicas > 1 else value

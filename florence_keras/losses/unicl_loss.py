"""UniCL: unified image-text-label contrastive loss (SPEC §1).

For a batch of L2-normalised image embeddings u_i, text embeddings v_j and labels y (identical texts, or
images of one class, share a label), with logits s·u_i·v_j:

    L_i2t = mean_i  -(1/|P(i)|) Σ_{k: y_k = y_i} log softmax_j(s u_i·v_j)[k]
    L_t2i = mean_j  -(1/|Q(j)|) Σ_{k: y_k = y_j} log softmax_i(s u_i·v_j)[k]
    L     = L_i2t + L_t2i

With all labels distinct this is exactly CLIP's symmetric cross-entropy.

Distributed training is explicit: pass `replica_context` (a `tf.distribute.ReplicaContext` inside
`strategy.run`, or any object with `num_replicas_in_sync` and a differentiable `all_gather(value, axis)`).
With N > 1 replicas the embeddings and labels of all replicas are all-gathered, so every anchor sees the
negatives of the whole global batch. Each replica then computes the loss terms of its *local* anchors only
(a [b, N·b] logits block instead of [N·b, N·b]) and returns its share

    L_r = Σ_{local anchors i} ℓ_i / (N·b),      ℓ_i = ℓ^i2t_i + ℓ^t2i_i,

so that Σ_r L_r = L. `ReplicaContext.all_gather` is differentiable: its gradient sums the upstream
gradients of all replicas and hands each replica the slice of its own shard. A replica's gradient of L_r
with respect to its local embeddings is therefore ∂L/∂(its embeddings) exactly, including the terms where
its embeddings act as negatives of other replicas' anchors, and summing the replicas' parameter
gradients (what tf.distribute's all-reduce and Keras optimizers do) gives the single-device gradient of
the global batch. (This is open_clip's `local_loss=True, gather_with_grad=True` mode; gathering without
gradient and replacing the local slice is only exact if every replica also computes all N·b anchors.)
The replica-equivalence is verified numerically in tests/losses/unicl_loss_test.py.

Without `replica_context` the batch given is the whole batch: the loss never looks for a distribution
strategy by itself (a replica that forgets to pass its context sees only its local negatives, and
`tests/losses/unicl_loss_test.py` shows that this differs). The math is `keras.ops` only; the gather is
whatever the context object does.
"""

import keras
from keras import ops

__all__ = ["unicl_loss", "unicl_anchor_losses"]


def _check_replica_context(replica_context):
    if replica_context is None:
        return None
    if not hasattr(replica_context, "all_gather") or not hasattr(replica_context, "num_replicas_in_sync"):
        raise ValueError(
            "`replica_context` must be None or a replica context with `num_replicas_in_sync` and "
            "`all_gather(value, axis)` (e.g. `tf.distribute.get_replica_context()` inside `strategy.run`). "
            f"Received: replica_context={replica_context!r}"
        )
    return replica_context if replica_context.num_replicas_in_sync > 1 else None


def _check_inputs(image_embeddings, text_embeddings, labels, logit_scale):
    image_shape = tuple(image_embeddings.shape)
    text_shape = tuple(text_embeddings.shape)
    label_shape = tuple(labels.shape)
    if len(image_shape) != 2:
        raise ValueError(
            "`image_embeddings` must have shape [batch, dim]. "
            f"Received: image_embeddings.shape={image_shape}"
        )
    if len(text_shape) != 2:
        raise ValueError(
            "`text_embeddings` must have shape [batch, dim]. "
            f"Received: text_embeddings.shape={text_shape}"
        )
    for axis in (0, 1):
        a, b = image_shape[axis], text_shape[axis]
        if a is not None and b is not None and a != b:
            raise ValueError(
                "`image_embeddings` and `text_embeddings` must have the same shape. "
                f"Received: image_embeddings.shape={image_shape}, "
                f"text_embeddings.shape={text_shape}"
            )
    if len(label_shape) != 1:
        raise ValueError(
            f"`labels` must have shape [batch]. Received: labels.shape={label_shape}"
        )
    if label_shape[0] is not None and image_shape[0] is not None and label_shape[0] != image_shape[0]:
        raise ValueError(
            "`labels` must have one entry per embedding. "
            f"Received: labels.shape={label_shape}, image_embeddings.shape={image_shape}"
        )
    if "int" not in keras.backend.standardize_dtype(labels.dtype):
        raise ValueError(
            "`labels` must be integers (text/class hash keys, see SPEC §1); casting 63-bit hashes to "
            f"float would merge distinct labels. Received: labels.dtype={labels.dtype}"
        )
    scale_shape = tuple(logit_scale.shape)
    if scale_shape not in ((), (1,)):
        raise ValueError(
            f"`logit_scale` must be a scalar. Received: logit_scale.shape={scale_shape}"
        )


def unicl_anchor_losses(image_embeddings, text_embeddings, labels, logit_scale, block_size=None,
                        replica_context=None):
    """Per-anchor UniCL loss terms ℓ_i = ℓ^i2t_i + ℓ^t2i_i of the local anchors.

    With a `replica_context` of several replicas the negatives (and positives) span the global batch
    (all-gathered, gradient kept for the local shard, see the module docstring); the anchors are the local
    examples. Without one, the given batch is the whole batch. Computed in float32 whatever the input dtype.

    Args:
        image_embeddings: float tensor [b, D], L2-normalised image embeddings.
        text_embeddings: float tensor [b, D], L2-normalised text embeddings; row i pairs with image i.
        labels: integer tensor [b]; examples with equal labels are positives of each other.
        logit_scale: scalar float tensor s (already exponentiated and clipped).
        block_size: optional int. When set (TensorFlow backend), the anchors are processed this many at
            a time with a closed-form gradient (`blockwise_unicl.py`): memory O(block_size · B) instead
            of O(b · B), same values to float rounding. The gradient cache uses it for big batches.
        replica_context: None (default: no gather) or the replica context of the caller (e.g.
            `tf.distribute.get_replica_context()` inside `strategy.run`); with more than one replica,
            embeddings and labels are all-gathered across its replicas.

    Returns:
        A tuple `(anchor_losses, global_batch_size)`: float32 [b] tensor of ℓ_i for the local anchors,
        and the number of anchors in the global batch (an int32 scalar tensor or a Python int).

    Example:

    >>> import numpy as np
    >>> u = np.eye(2, dtype="float32"); labels = np.array([0, 1])
    >>> losses, n = unicl_anchor_losses(u, u, labels, np.float32(10.0))
    >>> [round(float(x), 4) for x in losses], int(n)
    ([0.0001, 0.0001], 2)
    """
    image_embeddings = ops.cast(ops.convert_to_tensor(image_embeddings), "float32")
    text_embeddings = ops.cast(ops.convert_to_tensor(text_embeddings), "float32")
    labels = ops.convert_to_tensor(labels)
    logit_scale = ops.cast(ops.convert_to_tensor(logit_scale), "float32")
    _check_inputs(image_embeddings, text_embeddings, labels, logit_scale)
    logit_scale = ops.reshape(logit_scale, ())

    context = _check_replica_context(replica_context)
    if context is None:
        all_images, all_texts, all_labels = image_embeddings, text_embeddings, labels
    else:
        # One differentiable gather for both embeddings (its backward all-reduces the cotangents and
        # keeps this replica's slice); labels carry no gradient.
        all_images, all_texts = context.all_gather([image_embeddings, text_embeddings], axis=0)
        all_labels = context.all_gather(labels, axis=0)

    global_batch_size = ops.shape(all_labels)[0]
    if block_size is not None:
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                "`block_size` needs the TensorFlow backend. "
                f"Received: block_size={block_size!r} with backend {keras.backend.backend()!r}"
            )
        from florence_keras.losses.blockwise_unicl import blockwise_unicl_anchor_losses

        losses = blockwise_unicl_anchor_losses(
            image_embeddings, text_embeddings, all_images, all_texts, labels, all_labels,
            logit_scale, block_size)
        return losses, global_batch_size

    # Rows: local anchors; columns: the global batch.
    logits_i2t = logit_scale * ops.matmul(image_embeddings, ops.transpose(all_texts))
    logits_t2i = logit_scale * ops.matmul(text_embeddings, ops.transpose(all_images))
    positives = ops.cast(
        ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(all_labels, 0)), "float32"
    )
    # Every anchor is a positive of itself, so the count is >= 1; the maximum only guards malformed input.
    num_positives = ops.maximum(ops.sum(positives, axis=1), 1.0)
    i2t = -ops.sum(positives * ops.log_softmax(logits_i2t, axis=1), axis=1) / num_positives
    t2i = -ops.sum(positives * ops.log_softmax(logits_t2i, axis=1), axis=1) / num_positives
    return i2t + t2i, global_batch_size


def unicl_loss(image_embeddings, text_embeddings, labels, logit_scale, block_size=None, replica_context=None):
    """UniCL loss L = L_i2t + L_t2i over the global batch (SPEC §1).

    Positives of an anchor are all examples with its label (identical texts / same class); each anchor
    averages the log-probabilities of its positives, then anchors are averaged. Equals the CLIP loss when
    all labels are distinct. Computed in float32.

    With a `replica_context` of N > 1 replicas (inside `strategy.run`) embeddings and labels are
    all-gathered so that negatives span the global batch, and the returned value is this replica's *share*
    Σ_{local anchors} ℓ_i / (global batch size): summing the replicas' values gives L and summing their
    gradients (as tf.distribute's gradient all-reduce does) gives the single-device gradient of the global
    batch. This is the same convention as `tf.nn.compute_average_loss`.

    Args:
        image_embeddings: float tensor [b, D], L2-normalised image embeddings.
        text_embeddings: float tensor [b, D], L2-normalised text embeddings; row i pairs with image i.
        labels: integer tensor [b] of label keys (int64 text/class hashes).
        logit_scale: scalar float tensor, the (exponentiated, clipped) logit scale s.
        block_size: optional int: compute `block_size` anchors at a time (see `unicl_anchor_losses`).
        replica_context: None or the caller's replica context: gather across its replicas (see
            `unicl_anchor_losses`).

    Returns:
        A float32 scalar tensor.

    Example:

    >>> import numpy as np
    >>> u = np.array([[1.0, 0.0], [0.0, 1.0]], dtype="float32")
    >>> round(float(unicl_loss(u, u, np.array([7, 9]), np.float32(1.0))), 4)
    0.6265
    """
    anchor_losses, global_batch_size = unicl_anchor_losses(
        image_embeddings, text_embeddings, labels, logit_scale, block_size=block_size,
        replica_context=replica_context,
    )
    return ops.sum(anchor_losses) / ops.cast(global_batch_size, "float32")


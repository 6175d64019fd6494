"""Soft cross-entropy of per-location class logits against class fractions, weighted away from the background."""

import tensorflow as tf
from keras import ops


def pool_fractions(fractions, height, width):
    """Averages class fractions `(B, H, W, K)` over `(H/height) × (W/width)` blocks: `(B, height, width, K)`.

    Example:
    >>> import numpy as np
    >>> pool_fractions(np.array([[[[1.0], [0.0]], [[1.0], [1.0]]]], "float32"), 1, 1).numpy().ravel().tolist()
    [0.75]
    """
    fractions = ops.convert_to_tensor(fractions, "float32")
    full_height, full_width, channels = fractions.shape[1], fractions.shape[2], fractions.shape[3]
    if full_height % height or full_width % width:
        raise ValueError(f"The label maps ({full_height}x{full_width}) must divide into the logits' grid "
                         f"({height}x{width}).")
    blocks = ops.reshape(fractions, (-1, height, full_height // height, width, full_width // width, channels))
    return ops.mean(blocks, axis=(2, 4))


def dense_label_loss(logits, fractions, class_counts, background_weight=0.9, replica_context=None):
    """Σ over kinds of the weighted mean soft cross-entropy of per-block logits against per-block class fractions.

    The label maps `fractions` (per pixel, the fraction of each class of each kind: one-hot channels cropped and
    resized with the image) are averaged over the blocks of the logits' grid. Kind k's loss is
    `Σ_blocks w · CE(softmax(logits_k), y_k) / Σ_blocks w` with `w = 1 - background_weight · y_0[..., 0]`, the
    first kind's class 0 being the background: blocks of empty background count `1 - background_weight`, so the
    objects, a small part of each image, are not drowned.

    Args:
        logits: `(B, h, w, sum(class_counts))`.
        fractions: `(B, H, W, sum(class_counts))`, H and W multiples of h and w.
        class_counts: classes of each kind, in channel order.
        background_weight: float in [0, 1).
        replica_context: None (the batch is the whole batch), or the caller's replica context: the normaliser
            `Σ w` is summed over the replicas, so the replicas' losses add up to the global batch's.

    Returns:
        float32 scalar (this replica's share).
    """
    if not 0.0 <= background_weight < 1.0:
        raise ValueError(f"`background_weight` must be in [0, 1). Received: {background_weight!r}")
    class_counts = tuple(int(c) for c in class_counts)
    logits = ops.cast(logits, "float32")
    if logits.shape[-1] != sum(class_counts) or fractions.shape[-1] != sum(class_counts):
        raise ValueError(f"Logits and label maps need {sum(class_counts)} channels ({class_counts}). Received: "
                         f"{logits.shape[-1]} and {fractions.shape[-1]}")
    targets = pool_fractions(fractions, logits.shape[1], logits.shape[2])
    weights = 1.0 - background_weight * targets[..., 0]
    normaliser = tf.stop_gradient(ops.sum(weights))
    if replica_context is not None and replica_context.num_replicas_in_sync > 1:
        normaliser = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, normaliser)
    total = 0.0
    start = 0
    for count in class_counts:
        kind_logits = logits[..., start:start + count]
        kind_targets = targets[..., start:start + count]
        cross_entropy = -ops.sum(kind_targets * ops.log_softmax(kind_logits, axis=-1), axis=-1)
        total = total + ops.sum(cross_entropy * weights)
        start += count
    return total / ops.maximum(normaliser, 1e-6)

"""The two fusion pretraining losses of METER: image-text matching (ITM) and masked language modelling (MLM).

Both are weighted means of per-item cross-entropies, in `keras.ops`:

    ITM = Σ_n w_n · CE(softmax(itm_logits_n), y_n) / Σ_n w_n          y_n ∈ {0: not matched, 1: matched}
    MLM = Σ_{b,k} w_bk · CE(softmax(mlm_logits_bk), target_bk) / Σ_{b,k} w_bk

ITM's items are the pairs (positives and sampled negatives; `w = 0` for a query that had no negative), MLM's the
masked positions (`w = 0` for the unused prediction slots of a short text).
"""

from keras import ops


def weighted_cross_entropy(logits, targets, weights):
    """Σ w · CE / max(Σ w, 1e-6) of integer `targets` under `logits` `(..., C)`; float32.

    Args:
        logits: float `(..., C)`.
        targets: int `(...)`.
        weights: float `(...)`, 0 leaves an item out.
    """
    logits = ops.cast(logits, "float32")
    log_probabilities = ops.log_softmax(logits, axis=-1)
    picked = ops.take_along_axis(log_probabilities, ops.cast(targets, "int32")[..., None], axis=-1)[..., 0]
    weights = ops.cast(weights, "float32")
    return -ops.sum(weights * picked) / ops.maximum(ops.sum(weights), 1e-6)


def itm_loss(itm_logits, matched, weights=None):
    """Image-text matching: 2-way cross-entropy of `itm_logits` `(N, 2)` against `matched` `(N,)` (1 = the
    image and text belong together), averaged over the pairs with weight 1 (all by default)."""
    if weights is None:
        weights = ops.ones(ops.shape(matched), "float32")
    return weighted_cross_entropy(itm_logits, matched, weights)


def masked_lm_loss(mlm_logits, targets, weights):
    """Masked language modelling: cross-entropy of the original token ids `targets` `(B, K)` under
    `mlm_logits` `(B, K, V)` at the masked positions (`weights` `(B, K)`: 1 for a masked position, 0 for an unused
    slot), averaged over the masked positions."""
    return weighted_cross_entropy(mlm_logits, targets, weights)

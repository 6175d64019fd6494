"""BERT's masked-language-model corruption of token ids, in `keras.ops` (drawn anew each training step).

Per text, `n = max(1, round(rate · m))` of its `m` maskable positions are chosen uniformly without replacement
(BERT's `create_pretraining_data`: an exact count, not a Bernoulli draw per token; `n = 0` when `m = 0`). Each
chosen position becomes the mask token with probability 0.8, a random regular token with probability 0.1, and is
left unchanged with probability 0.1; the model must predict the original id at every chosen position.

Maskable: a position before the text's first end token that holds neither a special token (start, end, padding)
nor anything after the end (CLIP packs texts as start, BPE tokens, end, end-token padding).

The CLIP vocabulary has no `[MASK]`: `FlorenceFusionPretrainer` uses the start-of-text id, which real text only
has at position 0 (see its docstring). Random replacements are drawn from `[0, random_token_high)`, the regular
(BPE) ids, so a replacement can never be an end token and move the text's end.

The predictions are gathered: at most `max_predictions` per text (static shape), so the MLM head scores
`B × max_predictions` positions instead of `B × L`. `max_predictions >= ceil(rate · (L - 2))` loses nothing.
"""

import math

import keras
from keras import ops

IGNORE_LABEL = -100  # the label of a position that is not predicted (PyTorch / Hugging Face's convention)


def max_predictions_for(sequence_length, rate=0.15):
    """The prediction slots that hold every chosen position of a `sequence_length` text (start and end take 2)."""
    return max(1, math.ceil(rate * max(sequence_length - 2, 1)))


def maskable_positions(token_ids, end_token_id, special_token_ids=()):
    """bool `(B, L)`: positions before the first `end_token_id` that hold no id of `special_token_ids`."""
    token_ids = ops.convert_to_tensor(token_ids)
    is_end = ops.cast(ops.equal(token_ids, end_token_id), "int32")
    before_end = ops.equal(ops.cumsum(is_end, axis=1), 0)
    maskable = before_end
    for special in special_token_ids:
        maskable = ops.logical_and(maskable, ops.not_equal(token_ids, special))
    return maskable


def mask_tokens(token_ids, maskable, mask_token_id, random_token_high, rate=0.15, max_predictions=None,
                mask_probability=0.8, random_probability=0.1, seed=None):
    """Corrupts `token_ids` for MLM.

    Args:
        token_ids: int `(B, L)`.
        maskable: bool `(B, L)` (`maskable_positions`).
        mask_token_id: int, the id written at a masked position.
        random_token_high: int, random replacements are drawn uniformly from `[0, random_token_high)`.
        rate: float in (0, 1], the fraction of maskable positions predicted. Defaults to 0.15.
        max_predictions: int, the prediction slots per text; default `max_predictions_for(L, rate)`.
        mask_probability, random_probability: BERT's 0.8 / 0.1 (the rest is left unchanged).
        seed: int, `keras.random.SeedGenerator` or None.

    Returns:
        dict: `token_ids` int32 `(B, L)` the corrupted ids; `labels` int32 `(B, L)`: the original id at a chosen
        position, `IGNORE_LABEL` elsewhere; `positions` int32 `(B, K)`, `targets` int32 `(B, K)` (original ids)
        and `weights` float32 `(B, K)` (1 for a chosen position, 0 for an unused slot), `K = max_predictions`.
    """
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"`rate` must be in (0, 1]. Received: rate={rate!r}")
    if mask_probability < 0 or random_probability < 0 or mask_probability + random_probability > 1:
        raise ValueError(f"`mask_probability` and `random_probability` must be >= 0 with a sum <= 1. Received: "
                         f"{mask_probability!r}, {random_probability!r}")
    token_ids = ops.cast(ops.convert_to_tensor(token_ids), "int32")
    length = token_ids.shape[1]
    if length is None:
        raise ValueError("`token_ids` must have a static length.")
    slots = max_predictions_for(length, rate) if max_predictions is None else int(max_predictions)
    slots = min(slots, length)
    seed = keras.random.SeedGenerator(0) if seed is None else seed
    maskable = ops.convert_to_tensor(maskable)
    batch = ops.shape(token_ids)[0]

    # The count per text, then that many maskable positions, uniformly without replacement (top-k random scores).
    num_maskable = ops.sum(ops.cast(maskable, "float32"), axis=1)
    count = ops.where(num_maskable > 0, ops.maximum(1.0, ops.floor(rate * num_maskable + 0.5)), 0.0)
    count = ops.minimum(count, float(slots))
    scores = ops.where(maskable, keras.random.uniform(ops.shape(token_ids), seed=seed), -1.0)
    _, positions = ops.top_k(scores, slots)
    positions = ops.cast(positions, "int32")
    weights = ops.cast(ops.arange(slots, dtype="float32")[None, :] < count[:, None], "float32")
    targets = ops.take_along_axis(token_ids, positions, axis=1)

    # 80 / 10 / 10 replacement of each chosen position.
    draw = keras.random.uniform((batch, slots), seed=seed)
    random_ids = keras.random.randint((batch, slots), 0, random_token_high, seed=seed, dtype="int32")
    replacement = ops.where(draw < mask_probability, mask_token_id,
                            ops.where(draw < mask_probability + random_probability, random_ids, targets))
    chosen = ops.one_hot(positions, length, dtype="int32") * ops.cast(weights, "int32")[:, :, None]  # (B, K, L)
    selected = ops.sum(chosen, axis=1) > 0
    written = ops.sum(chosen * ops.cast(replacement, "int32")[:, :, None], axis=1)
    return {
        "token_ids": ops.where(selected, written, token_ids),
        "labels": ops.where(selected, token_ids, IGNORE_LABEL),
        "positions": positions,
        "targets": targets,
        "weights": weights,
    }

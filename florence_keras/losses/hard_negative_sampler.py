"""In-batch hard negatives for image-text matching (ALBEF / METER's ITM), drawn from contrastive similarities.

For each query (an image, or a text) one negative partner is drawn from the batch's *candidates*: every other
example whose pair is not a positive. With similarities `s[i, j]` (logit scale × cosine, the contrastive logits),
the candidate `j` of query `i` is drawn with probability

    p[i, j] = exp(s[i, j]) / Σ_{k candidate of i} exp(s[i, k])      (0 for non-candidates)

i.e. the softmax of the query's similarities renormalised over its candidates (ALBEF: `softmax(sim)` with the
positives' weights set to 0, then `multinomial`). A query with no candidate at all (every other example shares its
label or text) gets no negative: `valid` is False for it and the ITM loss leaves that pair out.

Sampling is the Gumbel-max trick (`argmax(s + g)`, `g = -log(-log(u))`, `u ~ U(0, 1)`): exact for the softmax above
and one `keras.random.uniform` call, in `keras.ops`.
"""

import keras
from keras import ops

# Added to the logits of non-candidates: exp() of it is 0 in float32, and unlike -inf it never makes a NaN.
_EXCLUDED = -1e9


def negative_candidates(token_ids, labels=None):
    """`(B, B)` bool: `[i, j]` True when example `j` may be the negative partner of example `i`.

    Excluded (never sampled): `j == i`; the same text (identical token-id rows: a caption shared by two images is a
    positive of both); the same label (`labels[i] == labels[j]`: the same image's other captions, or UniCL's
    same-class pairs). The relation is symmetric, so the same matrix serves image -> text and text -> image.

    Args:
        token_ids: int `(B, L)`.
        labels: optional int `(B,)`, the positive group of each example (e.g. its image's index).
    """
    token_ids = ops.convert_to_tensor(token_ids)
    same_text = ops.all(ops.equal(token_ids[:, None, :], token_ids[None, :, :]), axis=-1)
    batch = ops.shape(token_ids)[0]
    excluded = ops.logical_or(same_text, ops.cast(ops.eye(batch), "bool"))
    if labels is not None:
        labels = ops.convert_to_tensor(labels)
        excluded = ops.logical_or(excluded, ops.equal(labels[:, None], labels[None, :]))
    return ops.logical_not(excluded)


def negative_probabilities(similarities, candidates):
    """`(B, B)` float32: row `i` is the distribution a negative of query `i` is drawn from (0 off candidates; a row
    without candidates is all 0)."""
    similarities = ops.cast(similarities, "float32")
    candidates = ops.convert_to_tensor(candidates)
    logits = ops.where(candidates, similarities, _EXCLUDED)
    probabilities = ops.softmax(logits, axis=-1)
    return ops.where(candidates, probabilities, 0.0)


def sample_hard_negatives(similarities, candidates, seed=None):
    """Draws one negative per query (row) with `negative_probabilities(similarities, candidates)`.

    Args:
        similarities: float `(B, B)`, rows = queries, columns = the partners to draw from (for image -> text:
            `image_embeddings @ text_embeddings.T × logit_scale`; for text -> image its transpose). No gradient
            flows through the draw.
        candidates: bool `(B, B)` (`negative_candidates`).
        seed: int, `keras.random.SeedGenerator` or None.

    Returns:
        `(indices int32 (B,), valid bool (B,))`: the drawn partner of each query (0 where the query has no
        candidate), and whether it has one.
    """
    similarities = ops.stop_gradient(ops.cast(similarities, "float32"))
    candidates = ops.convert_to_tensor(candidates)
    logits = ops.where(candidates, similarities, _EXCLUDED)
    uniform = keras.random.uniform(ops.shape(logits), minval=1e-12, maxval=1.0, seed=seed)
    gumbel = -ops.log(-ops.log(uniform))
    valid = ops.any(candidates, axis=-1)
    indices = ops.cast(ops.argmax(logits + gumbel, axis=-1), "int32")
    return ops.where(valid, indices, 0), valid

"""MLM masking: exact rate, 80/10/10, specials and padding never masked, labels, the loss against NumPy."""

import keras
import numpy as np

from florence_keras.losses.fusion_pretraining_losses import masked_lm_loss
from florence_keras.models import mlm_masking

START, END, MASK, VOCABULARY = 98, 99, 98, 100  # start id doubles as the mask id (as the CLIP pretrainer)


def _texts(rng, batch=64, length=40):
    ids = np.full((batch, length), END, np.int32)
    lengths = rng.integers(0, length - 1, size=batch)  # body lengths 0..length-2
    for b, n in enumerate(lengths):
        ids[b, 0] = START
        ids[b, 1:1 + n] = rng.integers(0, 90, size=n)
    return ids, lengths


def _mask(ids, seed=0, **kwargs):
    maskable = mlm_masking.maskable_positions(ids, END, special_token_ids=(START,))
    return {k: np.asarray(v) for k, v in mlm_masking.mask_tokens(
        ids, maskable, MASK, 90, seed=keras.random.SeedGenerator(seed), **kwargs).items()}, np.asarray(maskable)


def test_maskable_positions_are_the_body_only():
    ids = np.array([[START, 5, 6, END, END], [START, END, 7, END, END]], np.int32)  # 7: after the end = padding
    maskable = np.asarray(mlm_masking.maskable_positions(ids, END, special_token_ids=(START,)))
    assert maskable.tolist() == [[False, True, True, False, False], [False, False, False, False, False]]


def test_count_rate_specials_and_labels():
    ids, lengths = _texts(np.random.default_rng(0))
    out, maskable = _mask(ids)
    changed_or_chosen = out["labels"] != mlm_masking.IGNORE_LABEL
    # Exactly max(1, round(0.15 m)) positions of each text with m maskable tokens (0 for an empty text).
    expected = np.where(lengths > 0, np.maximum(1, np.floor(0.15 * lengths + 0.5)), 0)
    np.testing.assert_array_equal(changed_or_chosen.sum(axis=1), expected)
    np.testing.assert_array_equal(out["weights"].sum(axis=1), expected)
    assert not changed_or_chosen[~maskable].any()  # start, end and padding are never chosen
    assert (out["token_ids"][~maskable] == ids[~maskable]).all()
    assert (out["token_ids"][:, 0] == START).all() and (out["token_ids"] == END).sum() == (ids == END).sum()
    # Labels: the original id where chosen, -100 elsewhere; positions / targets say the same.
    assert (out["labels"][changed_or_chosen] == ids[changed_or_chosen]).all()
    for b in range(len(ids)):
        chosen = out["positions"][b][out["weights"][b] > 0]
        assert sorted(chosen.tolist()) == np.flatnonzero(changed_or_chosen[b]).tolist()
        np.testing.assert_array_equal(out["targets"][b][out["weights"][b] > 0], ids[b, chosen])
    assert out["positions"].shape[1] == mlm_masking.max_predictions_for(40)


def test_rate_over_many_texts_and_the_80_10_10_split():
    rng = np.random.default_rng(1)
    ids = np.full((2000, 42), END, np.int32)
    ids[:, 0] = START
    ids[:, 1:41] = rng.integers(0, 90, size=(2000, 40))  # 40 maskable tokens: exactly 6 chosen each
    out, _ = _mask(ids, seed=3)
    chosen = out["labels"] != mlm_masking.IGNORE_LABEL
    assert chosen.sum() == 2000 * 6  # 15% of 40
    new, old = out["token_ids"][chosen], ids[chosen]
    as_mask = np.mean(new == MASK)
    kept = np.mean(new == old)
    random = 1 - as_mask - kept
    # 12,000 draws: standard error <= 0.0046. (A random token equal to the original, 1/90 of the 10%, counts as
    # kept: expected kept 0.1 + 0.1/90.)
    assert abs(as_mask - 0.8) < 0.02 and abs(kept - (0.1 + 0.1 / 90)) < 0.015 and abs(random - 0.1) < 0.015
    assert (new[(new != MASK) & (new != old)] < 90).all()  # random replacements are regular ids


def test_the_gathered_loss_is_numpy_cross_entropy_over_the_masked_positions():
    rng = np.random.default_rng(2)
    ids, _ = _texts(rng, batch=8, length=20)
    out, _ = _mask(ids, seed=5)
    logits = rng.normal(size=(8, 20, VOCABULARY)).astype(np.float32)  # as if a head scored every position
    gathered = np.take_along_axis(logits, out["positions"][:, :, None], axis=1)
    loss = float(masked_lm_loss(gathered, out["targets"], out["weights"]))
    # NumPy: cross-entropy at the positions whose label is not -100, nowhere else.
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    rows, cols = np.nonzero(out["labels"] != mlm_masking.IGNORE_LABEL)
    expected = -log_probabilities[rows, cols, out["labels"][rows, cols]].mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_masking_runs_inside_tf_data():
    import tensorflow as tf

    ids, _ = _texts(np.random.default_rng(3), batch=4, length=12)
    maskable = mlm_masking.maskable_positions(ids, END, special_token_ids=(START,))
    eager = mlm_masking.mask_tokens(ids, maskable, MASK, 90, seed=11)
    dataset = tf.data.Dataset.from_tensors(ids).map(
        lambda t: mlm_masking.mask_tokens(t, mlm_masking.maskable_positions(t, END, (START,)), MASK, 90,
                                          seed=11)["labels"])
    graph = next(iter(dataset))
    np.testing.assert_array_equal((np.asarray(graph) != -100).sum(axis=1),
                                  (np.asarray(eager["labels"]) != -100).sum(axis=1))

"""ITM and MLM losses against NumPy cross-entropies."""

import numpy as np

from florence_keras.losses.fusion_pretraining_losses import itm_loss
from florence_keras.losses.fusion_pretraining_losses import masked_lm_loss


def _log_softmax(logits):
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def test_itm_loss_is_the_mean_two_way_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 2)).astype(np.float32)
    matched = np.array([1, 1, 0, 0, 0, 0])
    # Two-way softmax CE = BCE with logit l1 - l0.
    margin = logits[:, 1].astype(np.float64) - logits[:, 0]
    probability = 1 / (1 + np.exp(-margin))
    bce = -(matched * np.log(probability) + (1 - matched) * np.log(1 - probability))
    np.testing.assert_allclose(float(itm_loss(logits, matched)), bce.mean(), rtol=1e-5)
    # A pair with weight 0 (a query without a negative) is left out of the mean.
    weights = np.array([1, 1, 1, 0, 1, 0], np.float32)
    np.testing.assert_allclose(float(itm_loss(logits, matched, weights)), bce[weights > 0].mean(), rtol=1e-5)


def test_mlm_loss_is_cross_entropy_over_the_masked_positions_only():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 3, 11)).astype(np.float32)
    targets = np.array([[4, 7, 0], [10, 2, 9]])
    weights = np.array([[1, 1, 0], [1, 0, 0]], np.float32)  # unused slots: 0
    log_probabilities = _log_softmax(logits)
    picked = [-log_probabilities[b, k, targets[b, k]] for b in range(2) for k in range(3) if weights[b, k]]
    np.testing.assert_allclose(float(masked_lm_loss(logits, targets, weights)), np.mean(picked), rtol=1e-5)
    # Uniform logits: ln(V).
    np.testing.assert_allclose(float(masked_lm_loss(np.zeros((1, 2, 11), np.float32), targets[:1, :2],
                                                    np.ones((1, 2), np.float32))), np.log(11), rtol=1e-6)

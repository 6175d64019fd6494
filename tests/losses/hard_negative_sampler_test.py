"""In-batch hard negatives: candidates, the sampling distribution against NumPy, never a positive."""

import keras
import numpy as np

from florence_keras.losses.hard_negative_sampler import negative_candidates
from florence_keras.losses.hard_negative_sampler import negative_probabilities
from florence_keras.losses.hard_negative_sampler import sample_hard_negatives

# Five examples: 0 and 3 have the same text; 1 and 4 the same label (two captions of one image).
TOKEN_IDS = np.array([[5, 7, 9, 9], [5, 8, 9, 9], [5, 6, 6, 9], [5, 7, 9, 9], [5, 1, 9, 9]], np.int32)
LABELS = np.array([0, 1, 2, 3, 1], np.int64)
SIMILARITIES = np.array([[2.0, 0.5, 1.0, 3.0, -1.0],
                         [0.0, 4.0, 1.5, -0.5, 2.0],
                         [1.0, 1.0, 2.5, 0.0, 0.0],
                         [3.0, 0.2, -2.0, 2.0, 1.0],
                         [0.1, 2.0, 0.3, 0.4, 1.0]], np.float32)


def _numpy_candidates():
    allowed = np.ones((5, 5), bool)
    for i in range(5):
        for j in range(5):
            if i == j or (TOKEN_IDS[i] == TOKEN_IDS[j]).all() or LABELS[i] == LABELS[j]:
                allowed[i, j] = False
    return allowed


def _numpy_probabilities(similarities, allowed):
    weights = np.where(allowed, np.exp(similarities.astype(np.float64)), 0.0)
    return weights / weights.sum(axis=1, keepdims=True)


def test_candidates_exclude_self_same_text_and_same_label():
    candidates = np.asarray(negative_candidates(TOKEN_IDS, LABELS))
    np.testing.assert_array_equal(candidates, _numpy_candidates())
    # By hand: 0 may pair with 1, 2, 4 (3 has its text); 1 with 0, 2, 3 (4 has its label).
    assert np.flatnonzero(candidates[0]).tolist() == [1, 2, 4]
    assert np.flatnonzero(candidates[1]).tolist() == [0, 2, 3]
    # Without labels only self and the shared text are excluded.
    assert np.asarray(negative_candidates(TOKEN_IDS))[1, 4]


def test_probabilities_are_the_softmax_over_the_candidates():
    candidates = negative_candidates(TOKEN_IDS, LABELS)
    expected = _numpy_probabilities(SIMILARITIES, _numpy_candidates())
    np.testing.assert_allclose(np.asarray(negative_probabilities(SIMILARITIES, candidates)), expected, atol=1e-6)
    # Hand case, row 0: exp(0.5), exp(1.0), exp(-1.0) normalised.
    by_hand = np.exp([0.5, 1.0, -1.0]) / np.exp([0.5, 1.0, -1.0]).sum()
    np.testing.assert_allclose(expected[0, [1, 2, 4]], by_hand, atol=1e-12)


def test_draws_follow_the_softmax_and_never_a_positive():
    candidates = negative_candidates(TOKEN_IDS, LABELS)
    expected = _numpy_probabilities(SIMILARITIES, _numpy_candidates())
    draws = 4000
    seed = keras.random.SeedGenerator(7)
    counts = np.zeros((5, 5))
    # 200 independent draws per call: the same 5 queries stacked 200 times (block-diagonal candidates).
    big_candidates = np.kron(np.eye(200, dtype=bool), np.asarray(candidates))
    big_similarities = np.kron(np.ones((200, 200), np.float32), SIMILARITIES)
    for _ in range(draws // 200):
        indices, valid = sample_hard_negatives(big_similarities, big_candidates, seed=seed)
        indices, valid = np.asarray(indices), np.asarray(valid)
        assert valid.all()
        rows = np.arange(1000)
        assert big_candidates[rows, indices].all()  # never self, same text or same label
        np.add.at(counts, (rows % 5, indices % 5), 1)
    frequencies = counts / draws
    # Binomial standard error <= sqrt(0.25 / 4000) = 0.0079: 5 sigma.
    np.testing.assert_allclose(frequencies, expected, atol=0.04)
    assert (frequencies[~_numpy_candidates()] == 0).all()


def test_a_query_without_candidates_is_marked_invalid():
    token_ids = np.array([[1, 2], [1, 3], [1, 4]], np.int32)
    labels = np.array([0, 0, 1])  # 0 and 1 share a label; 2 may pair with both, 0 and 1 only with 2
    candidates = negative_candidates(token_ids, labels)
    _, valid = sample_hard_negatives(np.zeros((3, 3), np.float32), candidates, seed=0)
    assert np.asarray(valid).tolist() == [True, True, True]
    labels = np.array([0, 0, 0])  # one image with three captions: no negative anywhere
    indices, valid = sample_hard_negatives(np.zeros((3, 3), np.float32), negative_candidates(token_ids, labels),
                                           seed=0)
    assert np.asarray(valid).tolist() == [False, False, False] and np.asarray(indices).tolist() == [0, 0, 0]


def test_a_sure_negative_is_always_drawn():
    # One candidate far more similar than the others: drawn (almost) always; a huge gap makes it certain.
    similarities = np.array([[0.0, 50.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    candidates = negative_candidates(np.array([[1], [2], [3]], np.int32))
    indices, _ = sample_hard_negatives(similarities, candidates, seed=3)
    assert int(np.asarray(indices)[0]) == 1

import numpy as np
import pytest
import sklearn.metrics

from florence_keras.evaluation import metrics


def brute_force_ranks(scores, targets):
    """Position of the target in a stable descending sort: the documented tie rule, computed by sorting."""
    return np.array([int(np.flatnonzero(np.argsort(-row, kind="stable") == t)[0]) for row, t in zip(scores, targets)])


def tied_scores(rng, rows, columns, levels=3):
    """Scores drawn from a few values, so that ties are everywhere."""
    return rng.integers(0, levels, size=(rows, columns)).astype(np.float32) / levels


class TestTargetRanks:
    def test_matches_stable_sort_with_many_ties(self):
        rng = np.random.default_rng(0)
        scores = tied_scores(rng, 200, 7)
        targets = rng.integers(0, 7, size=200)
        np.testing.assert_array_equal(metrics.target_ranks(scores, targets), brute_force_ranks(scores, targets))

    def test_hand_built_ties(self):
        scores = np.array(
            [
                [0.5, 0.5, 0.5],  # all tied: rank = index
                [0.5, 0.5, 0.5],
                [0.1, 0.9, 0.9],  # target 2 ties with the better-indexed 1 -> rank 1
                [0.9, 0.9, 0.1],  # target 0 ties with 1 but wins on index -> rank 0
                [0.0, 0.0, 1.0],  # target 1: one better score, one tie with a lower index -> rank 2
            ]
        )
        targets = [0, 2, 2, 0, 1]
        assert metrics.target_ranks(scores, targets).tolist() == [0, 2, 1, 0, 2]

    def test_integer_and_negative_zero_scores(self):
        assert metrics.target_ranks(np.array([[3, 5, 5]]), [2]).tolist() == [1]
        assert metrics.target_ranks(np.array([[-0.0, 0.0]]), [1]).tolist() == [1]  # -0.0 == 0.0 is a tie

    def test_infinite_scores_are_ranked(self):
        assert metrics.target_ranks([[-np.inf, np.inf, 0.0]], [2]).tolist() == [1]

    def test_rejects_nan_and_bad_targets(self):
        with pytest.raises(ValueError, match="NaN"):
            metrics.target_ranks([[0.1, np.nan]], [0])
        with pytest.raises(ValueError, match=r"\[0, 2\).*5"):
            metrics.target_ranks([[0.1, 0.2]], [5])
        with pytest.raises(ValueError, match="1 entries"):
            metrics.target_ranks([[0.1, 0.2]], [0, 1])
        with pytest.raises(ValueError, match="integers"):
            metrics.target_ranks([[0.1, 0.2]], [0.5])

    def test_blocks_give_the_same_answer(self, monkeypatch):
        rng = np.random.default_rng(1)
        scores = tied_scores(rng, 50, 9)
        targets = rng.integers(0, 9, size=50)
        expected = metrics.target_ranks(scores, targets)
        monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", 20)  # 2 rows per block
        np.testing.assert_array_equal(metrics.target_ranks(scores, targets), expected)
        np.testing.assert_array_equal(
            metrics.top_k_indices(scores, 4), np.argsort(-scores, axis=1, kind="stable")[:, :4]
        )


class TestTopK:
    def test_top_k_indices_hand_built(self):
        scores = [[0.2, 0.7, 0.7, 0.1], [1.0, 1.0, 1.0, 1.0]]
        assert metrics.top_k_indices(scores, 3).tolist() == [[1, 2, 0], [0, 1, 2]]

    def test_k_larger_than_classes_is_clipped(self):
        assert metrics.top_k_indices([[0.1, 0.3]], 5).tolist() == [[1, 0]]

    def test_top_k_accuracy_consistent_with_top_k_indices(self):
        rng = np.random.default_rng(2)
        scores = tied_scores(rng, 300, 10)
        labels = rng.integers(0, 10, size=300)
        accuracy = metrics.top_k_accuracy(scores, labels, ks=(1, 3, 5, 10, 20))
        for k in (1, 3, 5):
            top = metrics.top_k_indices(scores, k)
            assert accuracy[k] == pytest.approx(np.mean([label in row for label, row in zip(labels, top)]))
        assert accuracy[10] == 1.0 and accuracy[20] == 1.0

    def test_tie_at_the_boundary_hand_built(self):
        # Label 2 ties with label 1 for the best score: top-1 goes to class 1, so it is a top-1 miss, top-2 hit.
        assert metrics.top_k_accuracy([[0.0, 0.5, 0.5]], [2], ks=(1, 2)) == {1: 0.0, 2: 1.0}
        # Label 1 ties with label 2: it wins on index.
        assert metrics.top_k_accuracy([[0.0, 0.5, 0.5]], [1], ks=(1,)) == {1: 1.0}

    def test_agrees_with_sklearn_without_ties(self):
        rng = np.random.default_rng(3)
        scores = rng.normal(size=(100, 8))
        labels = rng.integers(0, 8, size=100)
        for k in (1, 2, 5):
            expected = sklearn.metrics.top_k_accuracy_score(labels, scores, k=k, labels=np.arange(8))
            assert metrics.top_k_accuracy(scores, labels, ks=k)[k] == pytest.approx(expected)

    def test_bad_ks(self):
        with pytest.raises(ValueError, match="ks"):
            metrics.top_k_accuracy([[0.1, 0.2]], [0], ks=(0,))


class TestPerClass:
    def test_confusion_matrix_matches_sklearn(self):
        rng = np.random.default_rng(4)
        labels = rng.integers(0, 6, size=200)
        predictions = rng.integers(0, 6, size=200)
        np.testing.assert_array_equal(
            metrics.confusion_matrix(labels, predictions, 6),
            sklearn.metrics.confusion_matrix(labels, predictions, labels=np.arange(6)),
        )

    def test_per_class_accuracy_is_recall(self):
        rng = np.random.default_rng(5)
        labels = rng.integers(0, 5, size=150)
        predictions = np.where(rng.random(150) < 0.6, labels, rng.integers(0, 5, size=150))
        accuracy, counts = metrics.per_class_accuracy(labels, predictions, 5)
        np.testing.assert_allclose(
            accuracy, sklearn.metrics.recall_score(labels, predictions, average=None, labels=np.arange(5))
        )
        np.testing.assert_array_equal(counts, np.bincount(labels, minlength=5))

    def test_class_without_examples_is_nan_and_excluded_from_mean(self):
        scores = [[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.7, 0.3, 0.0]]
        result = metrics.classification_metrics(scores, [0, 1, 1], ks=(1, 2), class_names=["a", "b", "c"])
        assert result["top1"] == pytest.approx(2 / 3)
        assert result["top2"] == 1.0
        assert result["per_class_accuracy"][:2] == [1.0, 0.5]
        assert np.isnan(result["per_class_accuracy"][2])
        assert result["mean_per_class_accuracy"] == pytest.approx(0.75)
        assert result["class_counts"] == [1, 2, 0]
        assert result["confusion_matrix"].tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]
        assert result["predictions"].tolist() == [0, 1, 0]

    def test_class_names_length_checked(self):
        with pytest.raises(ValueError, match="len\\(class_names\\)=1"):
            metrics.classification_metrics([[0.1, 0.2]], [0], class_names=["a"])

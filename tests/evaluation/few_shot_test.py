import numpy as np
import pytest

from florence_keras.evaluation import few_shot


def make_labels(per_class):
    return np.repeat(np.arange(len(per_class)) * 10 + 3, per_class)  # label values need not be 0..C-1


def test_episode_shape_and_disjointness():
    labels = make_labels([30, 25, 40, 22, 21, 50, 5])
    for index in range(20):
        episode = few_shot.sample_episode(labels, n_way=5, k_shot=5, n_query=15, seed=3, episode_index=index)
        assert len(set(episode.classes.tolist())) == 5
        assert 63 not in episode.classes.tolist()  # the 5-example class cannot supply 20 examples
        assert episode.support_indices.shape == (25,) and episode.query_indices.shape == (75,)
        assert np.intersect1d(episode.support_indices, episode.query_indices).size == 0
        assert np.unique(episode.support_indices).size == 25 and np.unique(episode.query_indices).size == 75
        np.testing.assert_array_equal(np.bincount(episode.support_labels), [5] * 5)
        np.testing.assert_array_equal(np.bincount(episode.query_labels), [15] * 5)
        # episode label j is original class classes[j]
        np.testing.assert_array_equal(labels[episode.support_indices], episode.classes[episode.support_labels])
        np.testing.assert_array_equal(labels[episode.query_indices], episode.classes[episode.query_labels])


def test_episodes_are_deterministic_and_independent_of_each_other():
    labels = make_labels([30] * 8)
    a = few_shot.sample_episode(labels, seed=1, episode_index=7)
    b = few_shot.sample_episode(labels, seed=1, episode_index=7)
    c = few_shot.sample_episode(labels, seed=2, episode_index=7)
    d = few_shot.sample_episode(labels, seed=1, episode_index=8)
    np.testing.assert_array_equal(a.support_indices, b.support_indices)
    np.testing.assert_array_equal(a.query_indices, b.query_indices)
    assert not np.array_equal(a.support_indices, c.support_indices)
    assert not np.array_equal(a.support_indices, d.support_indices)


def test_not_enough_classes_is_a_clear_error():
    labels = make_labels([30, 30, 30, 10, 10])
    with pytest.raises(few_shot.EpisodeError, match="only 3 of 5 classes"):
        few_shot.sample_episode(labels, n_way=5, k_shot=5, n_query=15)
    with pytest.raises(ValueError, match="n_way"):
        few_shot.sample_episode(labels, n_way=1)
    with pytest.raises(ValueError, match="k_shot"):
        few_shot.sample_episode(labels, k_shot=0)


def test_confidence_interval_formula():
    values = np.array([0.2, 0.4, 0.9, 0.5, 0.6])
    mean, half_width = few_shot.mean_confidence_interval(values)
    population_std = np.sqrt(np.mean((values - values.mean()) ** 2))
    assert mean == pytest.approx(0.52)
    assert half_width == pytest.approx(1.96 * population_std / np.sqrt(5))
    assert few_shot.mean_confidence_interval([0.5, 0.7]) == pytest.approx((0.6, 1.96 * 0.1 / np.sqrt(2)))
    assert few_shot.mean_confidence_interval([1.0])[1] == 0.0


def well_separated(rng, num_classes=6, per_class=25, dim=8):
    centers = np.eye(num_classes, dim) * 5.0
    labels = np.repeat(np.arange(num_classes), per_class)
    return centers[labels] + rng.normal(size=(labels.size, dim)) * 0.3, labels


def test_separable_data_gives_perfect_accuracy():
    features, labels = well_separated(np.random.default_rng(0))
    result = few_shot.few_shot_evaluate(features, labels, n_way=5, k_shot=5, n_query=10, num_episodes=12)
    assert result["mean_accuracy"] == 1.0 and result["ci95"] == 0.0
    assert result["accuracies"].shape == (12,)


def test_evaluate_matches_a_manual_episode_loop():
    rng = np.random.default_rng(1)
    features, labels = well_separated(rng, per_class=20)
    features = features + rng.normal(size=features.shape) * 3.0  # make it hard enough to have errors
    result = few_shot.few_shot_evaluate(features, labels, n_way=3, k_shot=2, n_query=5, num_episodes=6, seed=4)
    from sklearn.linear_model import LogisticRegression

    manual = []
    for index in range(6):
        episode = few_shot.sample_episode(labels, 3, 2, 5, seed=4, episode_index=index)
        model = LogisticRegression(C=1.0, tol=1e-8, max_iter=1000)
        model.fit(features[episode.support_indices], episode.support_labels)
        manual.append(np.mean(model.predict(features[episode.query_indices]) == episode.query_labels))
    np.testing.assert_allclose(result["accuracies"], manual)
    assert result["mean_accuracy"] == pytest.approx(np.mean(manual))
    assert 0.0 < result["mean_accuracy"] < 1.0


def test_sweep_skips_infeasible_shots():
    features, labels = well_separated(np.random.default_rng(2), per_class=25)
    results, skipped = few_shot.few_shot_sweep(
        features, labels, shots=(5, 20, 50), n_way=5, n_query=5, num_episodes=3
    )
    assert [r["k_shot"] for r in results] == [5, 20]
    assert skipped[0]["k_shot"] == 50 and "needs 5 classes" in skipped[0]["reason"]

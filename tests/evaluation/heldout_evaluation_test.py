"""The built-in evaluation's linear probe of shape (`probe_scores`), against hand-made features and sklearn."""

import numpy as np
import pytest

from florence_keras.evaluation.heldout_evaluation import builtin_table
from florence_keras.evaluation.heldout_evaluation import probe_scores


def _clusters(rng, per_class, num_classes, dim, spread):
    centres = rng.normal(size=(num_classes, dim)) * 3.0
    labels = np.repeat(np.arange(num_classes), per_class)
    return centres[labels] + spread * rng.normal(size=(labels.size, dim)), labels


def test_separable_classes_are_found_and_noise_is_at_chance():
    rng = np.random.default_rng(0)
    train, train_labels = _clusters(rng, 40, 4, 8, 0.3)
    test, test_labels = _clusters(np.random.default_rng(0), 10, 4, 8, 0.3)  # same centres, other draws
    scores = probe_scores(train, train_labels, test + 0.01, test_labels, 4)
    assert scores["top1"] == 1.0 and scores["validated"]
    assert scores["chance_top1"] == 0.25 and scores["classes"] == 4
    assert scores["images"] == 40 and scores["train_images"] == 160

    noise = rng.normal(size=(400, 8))
    scores = probe_scores(noise, rng.integers(0, 4, 400), rng.normal(size=(2000, 8)), rng.integers(0, 4, 2000), 4)
    assert abs(scores["top1"] - 0.25) < 0.05  # 2,000 test draws: 3 standard deviations are 0.029


def test_matches_sklearn_at_the_chosen_C():
    sklearn_linear = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(1)
    train, train_labels = _clusters(rng, 60, 3, 5, 2.5)  # overlapping classes: the probe makes errors
    test, test_labels = _clusters(np.random.default_rng(1), 60, 3, 5, 2.5)
    test = test + rng.normal(size=test.shape)
    scores = probe_scores(train, train_labels, test, test_labels, 3)
    assert 0.34 < scores["top1"] < 1.0
    # The same multinomial L2 logistic regression refitted by sklearn at the probe's C (sklearn's C multiplies
    # the summed data loss, as ours), trained on the whole training set as the protocol's refit does.
    reference = sklearn_linear.LogisticRegression(C=scores["best_C"], max_iter=5000, tol=1e-10).fit(train, train_labels)
    assert abs(reference.score(test, test_labels) - scores["top1"]) <= 2 / len(test_labels)


def test_too_few_examples_fall_back_to_one_fit():
    train = np.array([[0.0, 1.0], [1.0, 0.0]])
    scores = probe_scores(train, np.array([0, 1]), train, np.array([0, 1]), 2)
    assert scores["validated"] is False and scores["best_C"] == 1.0 and scores["top1"] == 1.0


def test_table_lists_the_probe_only_when_present():
    score = {"top1": 0.5, "chance_top1": 0.125, "classes": 8, "images": 10}
    retrieval = {f"{d}_R@{k}": 0.1 for d in ("image_to_text", "text_to_image") for k in (1, 5, 10)}
    retrieval.update({f"chance_{d}_R@{k}": 0.01 for d in ("image_to_text", "text_to_image") for k in (1, 5, 10)},
                     num_images=10, num_texts=30)
    results = {"in_distribution": {k: score for k in ("shape", "colour", "count", "place")},
               "unseen_combinations": {"shape": score, "shape_colour": dict(score, top5=0.6, chance_top5=0.1)},
               "retrieval": retrieval}
    assert "linear probe" not in builtin_table(results)
    results["in_distribution"]["shape_linear_probe"] = dict(score, top1=0.975)
    assert "| in-distribution test | linear probe shape top-1 (8-way) | 97.5% | 12.5% | 10 |" in builtin_table(results)

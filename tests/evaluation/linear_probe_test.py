import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from florence_keras.evaluation import linear_probe


def blobs(rng, num_classes=4, per_class=30, dim=5, spread=1.5, label_values=None):
    centers = rng.normal(size=(num_classes, dim)) * 2.0
    labels = np.repeat(np.arange(num_classes), per_class)
    features = centers[labels] + rng.normal(size=(labels.size, dim)) * spread
    if label_values is not None:
        labels = np.asarray(label_values)[labels]
    order = rng.permutation(labels.size)
    return features[order].astype(np.float32), labels[order]


def sklearn_fit(features, labels, C):
    model = LogisticRegression(C=C, solver="lbfgs", tol=1e-10, max_iter=10000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(np.asarray(features, np.float64), labels)
    return model


@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_matches_sklearn_lbfgs(C):
    rng = np.random.default_rng(0)
    features, labels = blobs(rng)
    test_features, _ = blobs(np.random.default_rng(1))
    ours = linear_probe.fit_logistic_regression(features, labels, C=C, tol=1e-10, max_iter=10000)
    reference = sklearn_fit(features, labels, C)
    np.testing.assert_array_equal(ours.classes, reference.classes_)
    scale = np.abs(reference.coef_).max()
    np.testing.assert_allclose(ours.weights.T, reference.coef_, atol=2e-4 * scale)
    np.testing.assert_allclose(ours.bias, reference.intercept_, atol=2e-4 * max(1.0, scale))
    np.testing.assert_allclose(
        ours.predict_proba(test_features), reference.predict_proba(test_features), atol=1e-4
    )
    np.testing.assert_array_equal(ours.predict(test_features), reference.predict(test_features))
    assert ours.converged


def test_two_classes_and_hash_labels_match_sklearn():
    rng = np.random.default_rng(2)
    hashes = np.array([7_000_000_000_000_000_001, 123], dtype=np.int64)  # data-contract style labels
    features, labels = blobs(rng, num_classes=2, label_values=hashes)
    ours = linear_probe.fit_logistic_regression(features, labels, C=1.0, tol=1e-10)
    reference = sklearn_fit(features, labels, 1.0)
    assert ours.classes.tolist() == [123, 7_000_000_000_000_000_001]
    # sklearn's binary model is one weight vector w; the symmetric softmax has w = W[:, 1] - W[:, 0].
    np.testing.assert_allclose(ours.weights[:, 1] - ours.weights[:, 0], reference.coef_[0], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(ours.predict_proba(features), reference.predict_proba(features), atol=1e-5)
    np.testing.assert_array_equal(ours.predict(features), reference.predict(features))


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    features, labels = blobs(rng, num_classes=3, per_class=5, dim=4)
    params = rng.normal(size=4 * 3 + 3)
    targets = np.unique(labels, return_inverse=True)[1]
    _, gradient = linear_probe._loss_and_gradient(params, features, targets, 3, 0.1)
    numeric = np.zeros_like(params)
    for i in range(params.size):
        step = np.zeros_like(params)
        step[i] = 1e-6
        plus = linear_probe._loss_and_gradient(params + step, features, targets, 3, 0.1)[0]
        minus = linear_probe._loss_and_gradient(params - step, features, targets, 3, 0.1)[0]
        numeric[i] = (plus - minus) / 2e-6
    np.testing.assert_allclose(gradient, numeric, atol=1e-6)


def test_blocked_loss_equals_unblocked(monkeypatch):
    rng = np.random.default_rng(4)
    features, labels = blobs(rng, num_classes=3, per_class=10, dim=4)
    targets = np.unique(labels, return_inverse=True)[1]
    params = rng.normal(size=15)
    expected = linear_probe._loss_and_gradient(params, features, targets, 3, 0.2)
    monkeypatch.setattr(linear_probe, "_BLOCK_ELEMENTS", 8)
    got = linear_probe._loss_and_gradient(params, features, targets, 3, 0.2)
    assert got[0] == pytest.approx(expected[0])
    np.testing.assert_allclose(got[1], expected[1])


def test_stratified_split():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 1 + [3] * 2)
    train, val = linear_probe.stratified_split(labels, validation_fraction=0.2, seed=0)
    assert np.intersect1d(train, val).size == 0
    assert np.union1d(train, val).tolist() == list(range(labels.size))
    assert np.bincount(labels[val], minlength=4).tolist() == [2, 1, 0, 1]
    again = linear_probe.stratified_split(labels, validation_fraction=0.2, seed=0)
    np.testing.assert_array_equal(again[1], val)
    with pytest.raises(ValueError, match="validation_fraction"):
        linear_probe.stratified_split(labels, validation_fraction=1.0)


def test_sweep_refines_and_picks_the_best_validation_accuracy():
    rng = np.random.default_rng(5)
    features, labels = blobs(rng, num_classes=3, per_class=20, dim=6, spread=2.5)
    val_features, val_labels = blobs(rng, num_classes=3, per_class=20, dim=6, spread=2.5)
    best_C, trials = linear_probe.sweep_regularization(
        features, labels, val_features, val_labels, coarse_grid=(1e-4, 1e-2, 1, 1e2), refine_steps=2
    )
    assert 4 < len(trials) <= 4 + 2 * 2  # a refinement round never re-fits a C already tried
    coarse = [t["C"] for t in trials[:4]]
    assert coarse == [1e-4, 1e-2, 1, 1e2]
    best = max(trials, key=lambda t: (t["val_accuracy"], -t["val_log_loss"], -t["C"]))
    assert best_C == best["C"]
    refined = [t["C"] for t in trials[4:6]]
    center = max(trials[:4], key=lambda t: (t["val_accuracy"], -t["val_log_loss"], -t["C"]))["C"]
    np.testing.assert_allclose(sorted(refined), [center / 10, center * 10])  # step 2 decades -> +-1 decade


def test_full_probe_with_unseen_test_labels():
    rng = np.random.default_rng(6)
    features, labels = blobs(rng, num_classes=3, per_class=20, dim=5, spread=0.3)
    # Test points at the class centers (blobs draws the centers first from the generator), plus one example of
    # a class the probe never saw.
    rng = np.random.default_rng(6)
    centers = rng.normal(size=(3, 5)) * 2.0
    test_labels = np.array([0, 1, 2, 0, 1, 2, 9])
    test_features = np.vstack([centers[[0, 1, 2, 0, 1, 2]], centers[[0]]]).astype(np.float32)
    result = linear_probe.linear_probe_evaluate(
        features, labels, test_features, test_labels, coarse_grid=(0.1, 10.0), refine_steps=1, ks=(1, 5)
    )
    assert result["num_unseen_test_examples"] == 1
    assert result["top1"] == pytest.approx(6 / 7)
    assert result["top5"] == pytest.approx(6 / 7)  # an unseen label is wrong at every k
    assert result["per_class_accuracy"] == [1.0, 1.0, 1.0]
    assert result["confusion_matrix"].tolist() == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert result["num_train"] + result["num_val"] == 60
    assert result["best_C"] in [t["C"] for t in result["sweep"]]
    assert result["model"].weights.shape == (5, 3)


def test_explicit_validation_split_and_errors():
    rng = np.random.default_rng(8)
    features, labels = blobs(rng, num_classes=2, per_class=10, dim=3)
    result = linear_probe.linear_probe_evaluate(
        features[:14], labels[:14], features[14:], labels[14:], val_features=features[:6], val_labels=labels[:6],
        coarse_grid=(1.0,), refine_steps=0,
    )
    assert result["num_val"] == 6 and result["num_train"] == 14 and result["best_C"] == 1.0
    with pytest.raises(ValueError, match="both"):
        linear_probe.linear_probe_evaluate(features, labels, features, labels, val_features=features)
    with pytest.raises(ValueError, match="at least 2 classes"):
        linear_probe.fit_logistic_regression(features, np.zeros(len(features)))
    with pytest.raises(ValueError, match="C=-1"):
        linear_probe.fit_logistic_regression(features, labels, C=-1)
    with pytest.raises(ValueError, match="increasing"):
        linear_probe.sweep_regularization(features, labels, features, labels, coarse_grid=(1.0, 0.1))


def test_warm_start_reaches_the_same_optimum():
    rng = np.random.default_rng(9)
    features, labels = blobs(rng, num_classes=3, per_class=10, dim=4)
    cold = linear_probe.fit_logistic_regression(features, labels, C=3.0, tol=1e-10)
    start = linear_probe.fit_logistic_regression(features, labels, C=0.3, tol=1e-10)
    warm = linear_probe.fit_logistic_regression(features, labels, C=3.0, tol=1e-10, initial_model=start)
    np.testing.assert_allclose(warm.weights, cold.weights, atol=1e-4)

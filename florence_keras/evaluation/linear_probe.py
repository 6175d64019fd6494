"""Linear probe: multinomial logistic regression on frozen features (the CLIP protocol).

The objective is scikit-learn's `LogisticRegression(solver="lbfgs")` (multinomial, L2 on the weights, the
intercept unpenalised), written in numpy and minimised with `scipy.optimize.minimize(method="L-BFGS-B")`:

    mean_i cross_entropy(x_i W + b, y_i) + ||W||^2 / (2 * C * n)

(sklearn's `C * sum_i CE + ||W||^2 / 2`, divided by `C * n`: the same minimiser; with two classes the penalty
is doubled so that the two-column softmax equals sklearn's single-vector binary model). The regularisation `C` is
chosen on a validation split: a coarse sweep over a log-spaced grid, then a bisection-style refinement around
the best value in log space; the final model is refit on train + validation with that `C` (CLIP, Radford et al.
2021, appendix A.3, sweeps 1e-6..1e6).
"""

import dataclasses
import logging

import numpy as np
import scipy.optimize

from florence_keras.evaluation import _checks
from florence_keras.evaluation import metrics

# Rows per block of the loss; bounds the float64 logits buffer to about this many elements.
_BLOCK_ELEMENTS = 1 << 22


@dataclasses.dataclass(frozen=True)
class LogisticRegressionModel:
    """A fitted multinomial logistic regression.

    Attributes:
        weights: float64 `[D, K]`.
        bias: float64 `[K]` (mean zero: the optimisation starts at zero and its gradient sums to zero).
        classes: `[K]` sorted original labels; column k of the logits is `classes[k]`.
        C: the inverse regularisation strength used.
        converged: whether L-BFGS met its tolerance within `max_iter`.
        num_iterations: L-BFGS iterations run.
    """

    weights: np.ndarray
    bias: np.ndarray
    classes: np.ndarray
    C: float
    converged: bool
    num_iterations: int

    def logits(self, features):
        """`[N, K]` logits of features `[N, D]`."""
        features = _checks.as_matrix(features, "features")
        if features.shape[1] != self.weights.shape[0]:
            raise ValueError(
                f"Expected features with {self.weights.shape[0]} columns. Received: features.shape="
                f"{features.shape}"
            )
        return np.asarray(features, dtype=np.float64) @ self.weights + self.bias

    def predict_proba(self, features):
        """`[N, K]` class probabilities (softmax of the logits)."""
        logits = self.logits(features)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict(self, features):
        """`[N]` predicted original labels (ties: the lower class index)."""
        return self.classes[metrics.top_k_indices(self.logits(features), 1)[:, 0]]


def _loss_and_gradient(params, features, targets, num_classes, l2):
    num_examples, dim = features.shape
    weights = params[: dim * num_classes].reshape(dim, num_classes)
    bias = params[dim * num_classes :]
    loss = 0.0
    grad_weights = np.zeros_like(weights)
    grad_bias = np.zeros_like(bias)
    block = max(1, _BLOCK_ELEMENTS // max(num_classes, dim))
    for start in range(0, num_examples, block):
        x = np.asarray(features[start : start + block], dtype=np.float64)
        y = targets[start : start + block]
        logits = x @ weights + bias
        shift = logits.max(axis=1, keepdims=True)
        exp = np.exp(logits - shift)
        total = exp.sum(axis=1, keepdims=True)
        log_normalizer = np.log(total) + shift
        loss += float(np.sum(log_normalizer[:, 0] - logits[np.arange(len(y)), y]))
        delta = exp / total
        delta[np.arange(len(y)), y] -= 1.0
        grad_weights += x.T @ delta
        grad_bias += delta.sum(axis=0)
    loss = loss / num_examples + 0.5 * l2 * float(np.sum(weights * weights))
    grad_weights = grad_weights / num_examples + l2 * weights
    grad_bias = grad_bias / num_examples
    return loss, np.concatenate([grad_weights.ravel(), grad_bias])


def _check_labels(labels, num_rows, name):
    labels = _checks.to_numpy(labels)
    if labels.ndim != 1 or labels.shape[0] != num_rows:
        raise ValueError(f"`{name}` must be 1-D with {num_rows} entries. Received: {name}.shape={labels.shape}")
    return labels


def fit_logistic_regression(features, labels, C=1.0, max_iter=1000, tol=1e-6, initial_model=None):
    """Fits multinomial L2 logistic regression with L-BFGS.

    Args:
        features: float `[N, D]`.
        labels: `[N]` labels of any sortable type (e.g. int64 hash labels); at least 2 distinct.
        C: inverse regularisation strength (sklearn's `C`), > 0.
        max_iter: L-BFGS iteration limit.
        tol: L-BFGS projected-gradient tolerance (`gtol`) on the mean-loss objective.
        initial_model: optional `LogisticRegressionModel` with the same classes to start from (warm start).

    Returns:
        a `LogisticRegressionModel`. Non-convergence is logged and recorded in `converged`.

    Example:
    >>> model = fit_logistic_regression([[0.0], [0.2], [1.0], [1.2]], [3, 3, 7, 7], C=10.0)
    >>> model.predict([[0.1], [1.1]]).tolist()
    [3, 7]
    """
    features = _checks.as_matrix(features, "features")
    labels = _check_labels(labels, features.shape[0], "labels")
    if not np.all(np.isfinite(features)):
        raise ValueError("`features` must be finite.")
    if not (isinstance(C, (int, float, np.floating)) and np.isfinite(C) and C > 0):
        raise ValueError(f"`C` must be a positive finite number. Received: C={C!r}")
    max_iter = _checks.check_positive_int(max_iter, "max_iter")
    classes, targets = np.unique(labels, return_inverse=True)
    if classes.size < 2:
        raise ValueError(f"Logistic regression needs at least 2 classes. Received labels: {classes.tolist()}")
    dim, num_classes = features.shape[1], classes.size
    initial = np.zeros(dim * num_classes + num_classes)
    if initial_model is not None:
        if not np.array_equal(initial_model.classes, classes) or initial_model.weights.shape[0] != dim:
            raise ValueError("`initial_model` must have the same classes and feature size as the data.")
        initial = np.concatenate([initial_model.weights.ravel(), initial_model.bias])
    l2 = 1.0 / (C * features.shape[0])
    if num_classes == 2:
        # sklearn fits one weight vector w for two classes. The symmetric two-column softmax optimum has
        # W = [-w/2, w/2], whose penalty ||W||^2 = ||w||^2 / 2: doubling it makes `C` mean exactly sklearn's.
        l2 *= 2.0
    result = scipy.optimize.minimize(
        _loss_and_gradient,
        initial,
        args=(features, targets.astype(np.int64), num_classes, l2),
        method="L-BFGS-B",
        jac=True,
        options={"maxiter": max_iter, "maxls": 50, "gtol": tol, "ftol": 64 * np.finfo(float).eps},
    )
    if not result.success:
        logging.warning("L-BFGS did not converge for C=%g after %d iterations: %s", C, result.nit, result.message)
    return LogisticRegressionModel(
        weights=result.x[: dim * num_classes].reshape(dim, num_classes),
        bias=result.x[dim * num_classes :],
        classes=classes,
        C=float(C),
        converged=bool(result.success),
        num_iterations=int(result.nit),
    )


def _scores_for(model, features, labels):
    """Logits re-indexed so that column c is class c of `model.classes`; labels mapped to those columns.

    Labels the model never saw get target -1 (always counted wrong)."""
    logits = model.logits(features)
    position = np.searchsorted(model.classes, labels)
    position = np.clip(position, 0, model.classes.size - 1)
    known = model.classes[position] == labels
    return logits, np.where(known, position, -1)


def _validation_score(model, features, labels):
    """(accuracy, mean log loss) of a model on labelled data; unknown labels count as errors."""
    logits, targets = _scores_for(model, features, labels)
    known = targets >= 0
    predictions = metrics.top_k_indices(logits, 1)[:, 0]
    accuracy = float(np.mean(known & (predictions == targets)))
    shift = logits.max(axis=1, keepdims=True)
    log_probs = logits - shift - np.log(np.exp(logits - shift).sum(axis=1, keepdims=True))
    log_loss = float(-np.mean(log_probs[known, targets[known]])) if known.any() else float("inf")
    return accuracy, log_loss


def stratified_split(labels, validation_fraction=0.2, seed=0):
    """Splits indices into train / validation, per class, deterministically.

    Each class with n >= 2 examples sends `max(1, round(n * validation_fraction))` (at most n - 1) examples to
    validation; a class with one example stays in train.

    Returns:
        `(train_indices, validation_indices)`, sorted int64 arrays.

    Example:
    >>> train, val = stratified_split([0, 0, 0, 0, 1, 1, 2], validation_fraction=0.5, seed=0)
    >>> len(train), len(val)
    (4, 3)
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"`validation_fraction` must be in (0, 1). Received: {validation_fraction!r}")
    labels = _checks.to_numpy(labels)
    rng = np.random.default_rng(seed)
    validation = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if members.size < 2:
            continue
        count = min(members.size - 1, max(1, int(round(members.size * validation_fraction))))
        validation.append(rng.permutation(members)[:count])
    validation = np.sort(np.concatenate(validation)) if validation else np.zeros(0, np.int64)
    train = np.setdiff1d(np.arange(labels.shape[0]), validation)
    return train.astype(np.int64), validation.astype(np.int64)


def sweep_regularization(
    train_features,
    train_labels,
    val_features,
    val_labels,
    coarse_grid=tuple(10.0**e for e in range(-6, 7, 2)),
    refine_steps=4,
    max_iter=1000,
    tol=1e-6,
    verbose=False,
):
    """Chooses `C` by validation accuracy: a coarse log-space grid, then refinement around the best value.

    Refinement: with `step` = the grid's log10 spacing, each round tries `best * 10**(+-step/2)` and halves
    `step`, so after `refine_steps` rounds `C` is resolved to `spacing / 2**refine_steps` decades. The best `C`
    has the highest validation accuracy; ties go to the lower validation log loss, then to the smaller `C`.

    Args:
        train_features, train_labels: the fit split.
        val_features, val_labels: the selection split.
        coarse_grid: increasing positive values of `C` (log-spaced).
        refine_steps: refinement rounds (0 = grid only).
        max_iter, tol: passed to `fit_logistic_regression`.
        verbose: log each trial.

    Returns:
        `(best_C, trials)` with `trials` a list of dicts `{"C", "val_accuracy", "val_log_loss"}` in trial order.
    """
    coarse_grid = [float(c) for c in coarse_grid]
    if not coarse_grid or any(c <= 0 or not np.isfinite(c) for c in coarse_grid):
        raise ValueError(f"`coarse_grid` must hold positive finite values. Received: {coarse_grid}")
    if sorted(coarse_grid) != coarse_grid or len(set(coarse_grid)) != len(coarse_grid):
        raise ValueError(f"`coarse_grid` must be strictly increasing. Received: {coarse_grid}")
    if isinstance(refine_steps, bool) or not isinstance(refine_steps, int) or refine_steps < 0:
        raise ValueError(f"`refine_steps` must be a non-negative int. Received: {refine_steps!r}")
    trials, tried = [], {}

    def evaluate(C):
        key = float(np.round(np.log10(C), 9))
        if key not in tried:
            model = fit_logistic_regression(train_features, train_labels, C=C, max_iter=max_iter, tol=tol)
            accuracy, log_loss = _validation_score(model, val_features, val_labels)
            trial = {"C": float(C), "val_accuracy": accuracy, "val_log_loss": log_loss}
            tried[key] = trial
            trials.append(trial)
            if verbose:
                logging.info("linear probe C=%.4g: val accuracy %.4f, log loss %.4f", C, accuracy, log_loss)
        return tried[key]

    def best_trial():
        return min(trials, key=lambda t: (-t["val_accuracy"], t["val_log_loss"], t["C"]))

    for C in coarse_grid:
        evaluate(C)
    if len(coarse_grid) > 1:
        step = float(np.mean(np.diff(np.log10(coarse_grid))))
    else:
        step = 1.0
    for _ in range(refine_steps):
        center = np.log10(best_trial()["C"])
        evaluate(10.0 ** (center - step / 2))
        evaluate(10.0 ** (center + step / 2))
        step /= 2
    return best_trial()["C"], trials


def linear_probe_evaluate(
    train_features,
    train_labels,
    test_features,
    test_labels,
    val_features=None,
    val_labels=None,
    validation_fraction=0.2,
    seed=0,
    coarse_grid=tuple(10.0**e for e in range(-6, 7, 2)),
    refine_steps=4,
    max_iter=1000,
    tol=1e-6,
    ks=(1, 5),
    verbose=False,
):
    """The full protocol: sweep `C` on validation, refit on train + validation, score the test split.

    Without an explicit validation split, `stratified_split(train_labels, validation_fraction, seed)` makes one.

    Args:
        train_features, train_labels: `[N, D]` features and `[N]` labels (any sortable label values).
        test_features, test_labels: the evaluation split; test labels absent from training count as errors.
        val_features, val_labels: optional validation split.
        validation_fraction, seed: for the automatic split.
        coarse_grid, refine_steps, max_iter, tol: see `sweep_regularization`.
        ks: reported top-k accuracies.
        verbose: log sweep progress.

    Returns:
        dict with `"best_C"`, `"sweep"` (trials), `"top{k}"`, `"mean_per_class_accuracy"`,
        `"per_class_accuracy"`, `"confusion_matrix"`, `"classes"` (label values, column order),
        `"predictions"` (class positions), `"num_unseen_test_examples"`, split sizes, `"converged"`, and
        `"model"` (the refit `LogisticRegressionModel`).
    """
    train_features = _checks.as_matrix(train_features, "train_features")
    train_labels = _check_labels(train_labels, train_features.shape[0], "train_labels")
    test_features = _checks.as_matrix(test_features, "test_features")
    test_labels = _check_labels(test_labels, test_features.shape[0], "test_labels")
    if (val_features is None) != (val_labels is None):
        raise ValueError("Give both `val_features` and `val_labels`, or neither.")
    if val_features is None:
        train_index, val_index = stratified_split(train_labels, validation_fraction, seed)
        if val_index.size == 0:
            raise ValueError("No class has 2 training examples; cannot split off a validation set.")
        fit_features, fit_labels = train_features[train_index], train_labels[train_index]
        val_features, val_labels = train_features[val_index], train_labels[val_index]
    else:
        fit_features, fit_labels = train_features, train_labels
        val_features = _checks.as_matrix(val_features, "val_features")
        val_labels = _check_labels(val_labels, val_features.shape[0], "val_labels")
    best_C, trials = sweep_regularization(
        fit_features,
        fit_labels,
        val_features,
        val_labels,
        coarse_grid=coarse_grid,
        refine_steps=refine_steps,
        max_iter=max_iter,
        tol=tol,
        verbose=verbose,
    )
    all_features = np.concatenate([fit_features, val_features], axis=0)
    all_labels = np.concatenate([fit_labels, val_labels], axis=0)
    model = fit_logistic_regression(all_features, all_labels, C=best_C, max_iter=max_iter, tol=tol)
    logits, targets = _scores_for(model, test_features, test_labels)
    unseen = targets < 0
    ks = _checks.check_ks(ks)
    ranks = metrics.target_ranks(logits, np.maximum(targets, 0))
    predictions = metrics.top_k_indices(logits, 1)[:, 0]
    result = {f"top{k}": float(np.mean((ranks < k) & ~unseen)) for k in ks}
    # Per-class accuracy and the confusion matrix cover the test examples whose class the probe knows.
    num_classes = model.classes.size
    accuracy, counts = metrics.per_class_accuracy(targets[~unseen], predictions[~unseen], num_classes)
    result.update(
        mean_per_class_accuracy=float(np.nanmean(accuracy)) if counts.any() else float("nan"),
        per_class_accuracy=[float(a) for a in accuracy],
        class_counts=[int(c) for c in counts],
        confusion_matrix=metrics.confusion_matrix(targets[~unseen], predictions[~unseen], num_classes),
        predictions=predictions,
        num_classes=int(num_classes),
    )
    result.update(
        best_C=float(best_C),
        sweep=trials,
        classes=model.classes,
        num_unseen_test_examples=int(unseen.sum()),
        num_train=int(fit_features.shape[0]),
        num_val=int(val_features.shape[0]),
        num_test=int(test_features.shape[0]),
        converged=bool(model.converged),
        model=model,
    )
    return result

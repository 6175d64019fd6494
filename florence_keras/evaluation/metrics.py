"""Ranking and classification metrics shared by zero-shot, linear-probe and few-shot evaluation.

**Tie rule (used everywhere in `florence_keras.evaluation`).** Candidates are ranked by descending score;
candidates with *equal* scores are ranked by ascending index (the lower class / text / image index first).
This is exactly the order of a stable sort of the negated scores, `np.argsort(-scores, kind="stable")`, and it
makes every metric deterministic. It is neither optimistic nor pessimistic about ties: a target that ties with
a lower-indexed candidate at the boundary of the top k is counted as a miss, one that ties with a
higher-indexed candidate is counted as a hit. With continuous embeddings exact ties are rare; they do occur
with degenerate models (e.g. all-zero scores), where this rule ranks class 0 first.

The rank of a target is 0-based: rank 0 is the top-1 prediction, and the target is within the top k if and
only if its rank is `< k`.
"""

import numpy as np

from florence_keras.evaluation import _checks

# Rows per block when comparing whole score rows; bounds temporary memory to ~`_BLOCK_ELEMENTS` booleans.
_BLOCK_ELEMENTS = 1 << 24


def _row_block(num_columns):
    return max(1, _BLOCK_ELEMENTS // max(1, num_columns))


def target_ranks(scores, targets):
    """0-based rank of each row's target column under the tie rule of this module.

    `rank[i] = #{j : scores[i, j] > scores[i, t]} + #{j < t : scores[i, j] == scores[i, t]}` with
    `t = targets[i]`; this is the position of `t` in `np.argsort(-scores[i], kind="stable")`, computed
    without sorting.

    Args:
        scores: float array `[N, C]`, higher is better. NaN is rejected.
        targets: int array `[N]` with values in `[0, C)`.

    Returns:
        int64 numpy array `[N]`.

    Example:
    >>> target_ranks([[0.1, 0.9, 0.9], [0.5, 0.5, 0.0]], [2, 1]).tolist()
    [1, 1]
    """
    scores = _checks.as_matrix(scores, "scores", allow_empty=True)
    num_rows, num_columns = scores.shape
    targets = _checks.as_index_vector(targets, "targets", size=num_rows, upper=num_columns)
    ranks = np.empty(num_rows, dtype=np.int64)
    columns = np.arange(num_columns)
    block = _row_block(num_columns)
    for start in range(0, num_rows, block):
        rows = scores[start : start + block]
        target = targets[start : start + block]
        target_score = np.take_along_axis(rows, target[:, None], axis=1)
        higher = np.count_nonzero(rows > target_score, axis=1)
        tied_before = np.count_nonzero((rows == target_score) & (columns[None, :] < target[:, None]), axis=1)
        ranks[start : start + block] = higher + tied_before
    return ranks


def top_k_indices(scores, k):
    """Indices of the `k` best-scoring columns of each row, best first, ties to the lower index.

    Args:
        scores: float array `[N, C]`. NaN is rejected.
        k: positive int; clipped to `C`.

    Returns:
        int64 numpy array `[N, min(k, C)]`.

    Example:
    >>> top_k_indices([[0.2, 0.7, 0.7, 0.1]], k=3).tolist()
    [[1, 2, 0]]
    """
    scores = _checks.as_matrix(scores, "scores", allow_empty=True)
    k = min(_checks.check_positive_int(k, "k"), scores.shape[1])
    out = np.empty((scores.shape[0], k), dtype=np.int64)
    block = _row_block(scores.shape[1])
    for start in range(0, scores.shape[0], block):
        rows = np.asarray(scores[start : start + block], dtype=np.float64)
        out[start : start + block] = np.argsort(-rows, axis=1, kind="stable")[:, :k]
    return out


def top_k_accuracy(scores, labels, ks=(1, 5)):
    """Fraction of rows whose label ranks within the top k, for each k (tie rule of this module).

    A k larger than the number of classes counts every row as correct (the usual definition).

    Args:
        scores: float array `[N, C]`.
        labels: int array `[N]` in `[0, C)`.
        ks: int or iterable of ints.

    Returns:
        dict `{k: accuracy}` with accuracies in `[0, 1]` as Python floats.

    Example:
    >>> top_k_accuracy([[0.9, 0.1], [0.6, 0.4]], [0, 1], ks=(1, 2))
    {1: 0.5, 2: 1.0}
    """
    ks = _checks.check_ks(ks)
    ranks = target_ranks(scores, labels)
    if ranks.size == 0:
        raise ValueError("`scores` must have at least one row to compute an accuracy.")
    return {k: float(np.mean(ranks < k)) for k in ks}


def confusion_matrix(labels, predictions, num_classes):
    """Counts `[num_classes, num_classes]`: rows are true labels, columns predicted labels.

    Example:
    >>> confusion_matrix([0, 1, 1], [0, 0, 1], num_classes=2).tolist()
    [[1, 0], [1, 1]]
    """
    num_classes = _checks.check_positive_int(num_classes, "num_classes")
    labels = _checks.as_index_vector(labels, "labels", upper=num_classes)
    predictions = _checks.as_index_vector(
        predictions, "predictions", size=labels.shape[0], upper=num_classes
    )
    flat = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def per_class_accuracy(labels, predictions, num_classes):
    """Top-1 accuracy of each class, and its number of examples.

    Args:
        labels: int array `[N]` in `[0, num_classes)`.
        predictions: int array `[N]` in `[0, num_classes)`.
        num_classes: int.

    Returns:
        `(accuracy, counts)`: float64 `[num_classes]` (NaN for a class with no examples) and int64
        `[num_classes]`.
    """
    matrix = confusion_matrix(labels, predictions, num_classes)
    counts = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(counts > 0, np.diag(matrix) / np.maximum(counts, 1), np.nan)
    return accuracy, counts


def classification_metrics(scores, labels, ks=(1, 5), class_names=None):
    """Top-k accuracies, per-class accuracy and confusion matrix from a score matrix.

    Args:
        scores: float array `[N, C]`, higher is better.
        labels: int array `[N]` in `[0, C)`.
        ks: the k of each reported top-k accuracy.
        class_names: optional list of `C` names, copied into the result.

    Returns:
        dict with `"top{k}"` for each k, `"mean_per_class_accuracy"` (mean over classes that have examples),
        `"per_class_accuracy"` (list, NaN for classes without examples), `"class_counts"`,
        `"confusion_matrix"` (numpy `[C, C]`), `"predictions"` (numpy `[N]`), `"num_examples"`,
        `"num_classes"` and, when given, `"class_names"`.

    Example:
    >>> m = classification_metrics([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]], [0, 1, 1], ks=(1,))
    >>> round(m["top1"], 4), m["per_class_accuracy"]
    (0.6667, [1.0, 0.5])
    """
    scores = _checks.as_matrix(scores, "scores")
    num_classes = scores.shape[1]
    labels = _checks.as_index_vector(labels, "labels", size=scores.shape[0], upper=num_classes)
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"`class_names` must have one name per score column ({num_classes}). "
            f"Received: len(class_names)={len(class_names)}"
        )
    ks = _checks.check_ks(ks)
    ranks = target_ranks(scores, labels)
    predictions = top_k_indices(scores, 1)[:, 0]
    accuracy, counts = per_class_accuracy(labels, predictions, num_classes)
    result = {f"top{k}": float(np.mean(ranks < k)) for k in ks}
    result.update(
        mean_per_class_accuracy=float(np.nanmean(accuracy)),
        per_class_accuracy=[float(a) for a in accuracy],
        class_counts=[int(c) for c in counts],
        confusion_matrix=confusion_matrix(labels, predictions, num_classes),
        predictions=predictions,
        num_examples=int(scores.shape[0]),
        num_classes=int(num_classes),
    )
    if class_names is not None:
        result["class_names"] = [str(name) for name in class_names]
    return result

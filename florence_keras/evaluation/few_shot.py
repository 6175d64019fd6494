"""N-way K-shot episodic evaluation with a linear adapter on frozen features (CDFSL-style).

An episode draws `n_way` classes, then `k_shot` support and `n_query` query examples per class, disjoint. A
multinomial logistic regression (`linear_probe.fit_logistic_regression`) is fit on the support features and
scored on the queries. The report is the mean accuracy over episodes and its 95% confidence interval
`1.96 * std / sqrt(num_episodes)` with the population standard deviation (`ddof=0`, as in the CDFSL benchmark
code).

Episode `i` of seed `s` is drawn from `np.random.default_rng([s, i])`, so it is the same however many episodes
are run.
"""

import collections
import logging

import numpy as np

from florence_keras.evaluation import _checks
from florence_keras.evaluation import features as features_lib
from florence_keras.evaluation import linear_probe
from florence_keras.evaluation import metrics

Episode = collections.namedtuple(
    "Episode", ["classes", "support_indices", "support_labels", "query_indices", "query_labels"]
)
Episode.__doc__ = """One few-shot episode (indices into the feature array).

Attributes:
    classes: `[n_way]` original labels; episode label j means `classes[j]`.
    support_indices: int64 `[n_way * k_shot]`, grouped by episode label.
    support_labels: int64 `[n_way * k_shot]` in `[0, n_way)`.
    query_indices: int64 `[n_way * n_query]`.
    query_labels: int64 `[n_way * n_query]`.
"""


def _eligible_classes(labels, n_way, k_shot, n_query):
    """Classes with at least `k_shot + n_query` examples; an `EpisodeError` if fewer than `n_way` have that many."""
    classes, counts = np.unique(labels, return_counts=True)
    eligible = classes[counts >= k_shot + n_query]
    if eligible.size < n_way:
        raise EpisodeError(
            f"A {n_way}-way {k_shot}-shot episode with {n_query} queries needs {n_way} classes with at least "
            f"{k_shot + n_query} examples; only {eligible.size} of {classes.size} classes have that many "
            f"(largest class: {int(counts.max()) if counts.size else 0} examples)."
        )
    return eligible


class EpisodeError(ValueError):
    """The labels cannot supply the requested episode (too few classes with enough examples)."""


def sample_episode(labels, n_way=5, k_shot=5, n_query=15, seed=0, episode_index=0):
    """Draws one episode deterministically from `(seed, episode_index)`.

    Only classes with at least `k_shot + n_query` examples take part.

    Args:
        labels: `[N]` labels (any sortable values).
        n_way, k_shot, n_query: classes, support and query examples per class.
        seed, episode_index: non-negative ints selecting the random stream.

    Returns:
        an `Episode`. Raises `EpisodeError` (a ValueError) when the labels cannot supply the episode.

    Example:
    >>> episode = sample_episode([0] * 4 + [1] * 4 + [2] * 4, n_way=2, k_shot=1, n_query=2)
    >>> len(episode.support_indices), len(episode.query_indices)
    (2, 4)
    """
    labels = _checks.to_numpy(labels)
    if labels.ndim != 1:
        raise ValueError(f"`labels` must be 1-D. Received: labels.shape={labels.shape}")
    n_way = _checks.check_positive_int(n_way, "n_way")
    k_shot = _checks.check_positive_int(k_shot, "k_shot")
    n_query = _checks.check_positive_int(n_query, "n_query")
    if n_way < 2:
        raise ValueError(f"`n_way` must be at least 2. Received: n_way={n_way}")
    eligible = _eligible_classes(labels, n_way, k_shot, n_query)
    rng = np.random.default_rng([int(seed), int(episode_index)])
    chosen = rng.choice(eligible, size=n_way, replace=False)
    support, query = [], []
    for cls in chosen:
        members = rng.choice(np.flatnonzero(labels == cls), size=k_shot + n_query, replace=False)
        support.append(members[:k_shot])
        query.append(members[k_shot:])
    return Episode(
        classes=chosen,
        support_indices=np.concatenate(support).astype(np.int64),
        support_labels=np.repeat(np.arange(n_way, dtype=np.int64), k_shot),
        query_indices=np.concatenate(query).astype(np.int64),
        query_labels=np.repeat(np.arange(n_way, dtype=np.int64), n_query),
    )


def mean_confidence_interval(values, z=1.96):
    """`(mean, z * std / sqrt(n))` with the population standard deviation (ddof=0).

    Example:
    >>> mean, half_width = mean_confidence_interval([0.5, 0.7])
    >>> round(mean, 4), round(half_width, 4)
    (0.6, 0.1386)
    """
    values = np.asarray(_checks.to_numpy(values), dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("`values` is empty.")
    mean = float(values.mean())
    half_width = float(z * values.std() / np.sqrt(values.size))
    return mean, half_width


def few_shot_evaluate(
    features,
    labels,
    n_way=5,
    k_shot=5,
    n_query=15,
    num_episodes=600,
    seed=0,
    C=1.0,
    max_iter=1000,
    verbose=False,
):
    """Mean accuracy and 95% interval of a linear adapter over few-shot episodes.

    Args:
        features: `[N, D]` frozen features.
        labels: `[N]` labels.
        n_way, k_shot, n_query: episode shape.
        num_episodes: episodes to average (600 by default, as in CDFSL).
        seed: episode stream seed.
        C: inverse L2 strength of the adapter (fixed: the support set is too small to sweep it). With
            L2-normalised features a small `C` tends to a class-prototype classifier, a large one fits the
            support set exactly.
        max_iter: L-BFGS iteration limit per episode.
        verbose: show a progress bar over episodes.

    Returns:
        dict with `"mean_accuracy"`, `"ci95"`, `"accuracies"` (numpy `[num_episodes]`), and the settings.
    """
    features = _checks.as_matrix(features, "features")
    labels = _checks.to_numpy(labels)
    if labels.shape != (features.shape[0],):
        raise ValueError(
            f"`labels` must have shape ({features.shape[0]},). Received: labels.shape={labels.shape}"
        )
    num_episodes = _checks.check_positive_int(num_episodes, "num_episodes")
    progbar = features_lib.progress_bar(num_episodes, verbose, unit_name="episode")
    accuracies = np.empty(num_episodes, dtype=np.float64)
    not_converged = 0
    for index in range(num_episodes):
        episode = sample_episode(labels, n_way, k_shot, n_query, seed=seed, episode_index=index)
        model = linear_probe.fit_logistic_regression(
            features[episode.support_indices], episode.support_labels, C=C, max_iter=max_iter
        )
        not_converged += not model.converged
        predictions = metrics.top_k_indices(model.logits(features[episode.query_indices]), 1)[:, 0]
        accuracies[index] = np.mean(model.classes[predictions] == episode.query_labels)
        progbar.update(index + 1)
    if not_converged:
        logging.warning("The adapter did not converge in %d of %d episodes.", not_converged, num_episodes)
    mean, ci95 = mean_confidence_interval(accuracies)
    return {
        "n_way": int(n_way),
        "k_shot": int(k_shot),
        "n_query": int(n_query),
        "num_episodes": int(num_episodes),
        "seed": int(seed),
        "C": float(C),
        "mean_accuracy": mean,
        "ci95": ci95,
        "accuracies": accuracies,
        "num_not_converged": int(not_converged),
    }


def few_shot_sweep(features, labels, shots=(5, 20, 50), **kwargs):
    """`few_shot_evaluate` for each K in `shots`; K values whose episodes cannot be drawn are skipped.

    Returns:
        `(results, skipped)`: a list of result dicts (one per feasible K) and a list of
        `{"k_shot": K, "reason": message}` for the skipped ones.
    """
    shots = _checks.check_ks(shots, "shots")
    results, skipped = [], []
    for k_shot in shots:
        try:
            results.append(few_shot_evaluate(features, labels, k_shot=k_shot, **kwargs))
        except EpisodeError as error:
            logging.warning("Skipping %d-shot: %s", k_shot, error)
            skipped.append({"k_shot": int(k_shot), "reason": str(error)})
    return results, skipped

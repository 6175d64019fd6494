"""Training on several data sources, each step's batch from one of them: `make_source_mixture_input_fn`.

A contrastive loss over a batch that mixes sources lets the easiest feature of one source answer the others: in
the built-in data, colour-bearing captions beside shape-only texts teach colour and suppress shape
(docs/training_science.md §3b, "feature suppression"). With one source per step every source's batch is answered
only by the features that source asks for, whatever the others ask (multi-task training with homogeneous batches,
as multi-dataset recipes do). Which source a step reads follows a fixed weighted schedule, so a run is the same
each time and a resume reads exactly the batches it would have read.
"""

import dataclasses

import numpy as np
import tensorflow as tf

__all__ = ["make_source_mixture_input_fn", "weighted_schedule"]


def weighted_schedule(weights):
    """One cycle of source indices in which source `i` comes `weights[i]` times, spread evenly.

    Deterministic (smooth weighted round-robin: each slot goes to the source furthest behind its share; ties to the
    lower index).

    Args:
        weights: sequence of ints >= 0, at least one > 0.

    Returns:
        list of int, of length `sum(weights)`.

    Example:
    >>> weighted_schedule([2, 1, 1])
    [0, 1, 2, 0]
    """
    weights = [int(w) for w in weights]
    if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
        raise ValueError(f"`weights` must be integers >= 0, at least one > 0. Received: weights={weights!r}")
    total = sum(weights)
    credit = [0] * len(weights)
    schedule = []
    for _ in range(total):
        for i, weight in enumerate(weights):
            credit[i] += weight
        best = max(range(len(weights)), key=lambda i: (credit[i], -i))
        credit[best] -= total
        schedule.append(best)
    return schedule


def make_source_mixture_input_fn(make_datasets, weights):
    """A trainer `make_dataset(request)` whose every step reads one source's batch, by a weighted schedule.

    Each source is a `make_dataset(request)` callable of its own (e.g. `make_image_text_input_fn` over one caption
    file). Step `s` reads source `schedule[s % len(schedule)]` with `schedule = weighted_schedule(weights)`; every
    replica of the step reads the same source, so the global batch is one source's. The sources' own `positions`
    are dropped: the trainer resumes this stream by rebuilding it and skipping the batches already delivered in the
    stage (exact for deterministic sources; it reads those batches again).

    Args:
        make_datasets: list of callables `request -> tf.data.Dataset` of per-replica batches (the trainer's
            `DatasetRequest` contract), all with the same element spec apart from `positions`.
        weights: list of ints, one per source: its share of the steps.

    Returns:
        A callable `request -> tf.data.Dataset`.
    """
    make_datasets = list(make_datasets)
    if not make_datasets:
        raise ValueError("`make_datasets` is empty.")
    if len(weights) != len(make_datasets):
        raise ValueError(f"One weight per source: {len(make_datasets)} sources, weights={list(weights)!r}.")
    schedule = weighted_schedule(weights)

    def make_dataset(request):
        # Every replica of a step reads that step's source: a pipeline feeding k replicas gives k batches a step.
        replicas_per_pipeline = max(
            request.global_batch_size // (request.batch_size * request.num_input_pipelines), 1)
        sources = [make(dataclasses.replace(request, start_position=0)) for make in make_datasets]
        sources = [source.map(lambda batch: {k: v for k, v in batch.items() if k != "positions"})
                   for source in sources]
        active = sorted(set(schedule))
        if len(active) == 1:
            return sources[active[0]]
        choices = np.repeat(np.asarray(schedule, np.int64), replicas_per_pipeline)
        choice_dataset = tf.data.Dataset.from_tensor_slices(choices).repeat()
        return tf.data.Dataset.choose_from_datasets(sources, choice_dataset, stop_on_empty_dataset=True)

    return make_dataset

"""Shuffles whose order is a pure function of a key `[seed, epoch]`.

`tf.data.Dataset.shuffle(seed=...)` mixes its seed with tf.random's global seed (`tf.random.set_seed`): the order then
depends on what else the process did, and a seed that is a tensor (an epoch number inside `flat_map`) fails to trace
when the global seed is 0. These shuffles draw their order from `tf.random.experimental.index_shuffle` with the key
alone, so epoch `e` has the same order in any process, before and after a resume.
"""

import numpy as np
import tensorflow as tf


def _key(key):
    return tf.cast(tf.convert_to_tensor(key), tf.int64)


def permute_slices(tensors, key):
    """A dataset of the slices of `tensors` (a dict of equal-length 1-D tensors or arrays) in the key's order."""
    tensors = {name: tf.convert_to_tensor(value) for name, value in tensors.items()}
    count = tf.shape(next(iter(tensors.values())), out_type=tf.int64)[0]
    key = _key(key)

    def slice_at(index):
        row = tf.random.experimental.index_shuffle(index, key, tf.maximum(count - 1, 0))
        return {name: tf.gather(value, row) for name, value in tensors.items()}

    return tf.data.Dataset.range(count).map(slice_at)


def block_shuffle(dataset, block_size, key):
    """`dataset` with each run of `block_size` consecutive elements permuted, block `b` by `fold_in(key, b)`.

    Like `shuffle(block_size)` it holds at most one block of elements; unlike it, an element never moves across a
    block boundary (the caller mixes at a coarser grain first, e.g. by permuting and interleaving files).
    """
    key = _key(key)

    def permuted(block_index, block):
        count = tf.shape(tf.nest.flatten(block)[0], out_type=tf.int64)[0]
        block_key = tf.random.experimental.stateless_fold_in(key, block_index)
        order = tf.random.experimental.index_shuffle(tf.range(count), block_key, tf.maximum(count - 1, 0))
        return tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(lambda value: tf.gather(value, order), block))

    return dataset.batch(block_size).enumerate().flat_map(permuted)


def grouped_order(word_values, row_splits, key, fraction, group_size):
    """An order of the examples in which runs of `group_size` share a caption word: in-batch hard negatives.

    Each example draws one of its grouping words (`caption_groups.caption_word_ids`); a `fraction` of the examples
    (those with any word) are sorted into clusters by the word drawn, each cut to a whole number of groups, and the
    rest (the others and each word's remainder) form a random pool; all are cut into groups of `group_size`
    consecutive examples, and the groups are permuted. Every draw follows from `key`, so epoch
    `e` (key `[seed, e]`) has the same order in any process. With `fraction` 0 the order is random groups of random
    examples: a plain shuffle.

    Args:
        word_values: int64 array, the ragged word ids' values.
        row_splits: int64 array of length N + 1, the ragged word ids' row splits.
        key: int64 tensor `[2]`, e.g. `[seed, epoch]`.
        fraction: float in [0, 1], the share of examples placed in word groups.
        group_size: int >= 1.

    Returns:
        int64 tensor `[N]`: the example (row) at each position of the epoch.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"`fraction` must be in [0, 1]. Received: fraction={fraction!r}")
    if not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"`group_size` must be an int >= 1. Received: group_size={group_size!r}")
    count = len(row_splits) - 1
    key = _key(key)
    splits = tf.constant(row_splits, tf.int64)
    lengths = splits[1:] - splits[:-1]
    values = tf.constant(np.concatenate([word_values, [0]]).astype(np.int64))  # one pad: gathers stay in range

    def uniform(stream):
        seed = tf.random.experimental.stateless_fold_in(key, stream)
        return tf.random.stateless_uniform([count], seed=seed, dtype=tf.float64)

    pick = tf.minimum(tf.cast(tf.floor(uniform(1) * tf.cast(lengths, tf.float64)), tf.int64),
                      tf.maximum(lengths - 1, 0))
    word = tf.gather(values, splits[:-1] + pick)
    grouped = tf.logical_and(lengths > 0, uniform(2) < fraction)
    anchor = tf.where(grouped, word, -1)  # -1: the random pool
    # Sort by the word drawn, randomly within a word (anchor + u, u in [0, 1)); then keep whole groups of each word
    # only, so every cluster starts on a group boundary, and send the rest of each word to the pool.
    rows = tf.argsort(tf.cast(anchor, tf.float64) + uniform(3), stable=True)
    sorted_anchor = tf.gather(anchor, rows)
    first = tf.searchsorted(sorted_anchor, sorted_anchor, side="left")
    size = tf.searchsorted(sorted_anchor, sorted_anchor, side="right") - first
    rank = tf.range(count, dtype=first.dtype) - first
    kept = tf.logical_and(sorted_anchor >= 0, rank < (size // group_size) * group_size)
    # The pool (a random order) goes after the clusters: 2^40 is above any word id.
    pool_last = tf.where(kept, tf.cast(sorted_anchor, tf.float64), 2.0**40) + tf.gather(uniform(5), rows)
    rows = tf.gather(rows, tf.argsort(pool_last, stable=True))
    full_groups = count // group_size
    if full_groups < 2:
        return tf.cast(rows, tf.int64)
    index = tf.range(count, dtype=tf.int64)
    group, member = index // group_size, index % group_size
    group_key = tf.random.experimental.stateless_fold_in(key, 4)
    shuffled = tf.random.experimental.index_shuffle(tf.minimum(group, full_groups - 1), group_key, full_groups - 1)
    source_group = tf.where(group < full_groups, shuffled, group)  # the last, partial group stays last
    return tf.gather(tf.cast(rows, tf.int64), source_group * group_size + member)

"""Shuffles whose order is a pure function of a key `[seed, epoch]`.

`tf.data.Dataset.shuffle(seed=...)` mixes its seed with tf.random's global seed (`tf.random.set_seed`): the order then
depends on what else the process did, and a seed that is a tensor (an epoch number inside `flat_map`) fails to trace
when the global seed is 0. These shuffles draw their order from `tf.random.experimental.index_shuffle` with the key
alone, so epoch `e` has the same order in any process, before and after a resume.
"""

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

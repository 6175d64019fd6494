"""keyed_shuffle: orders that are permutations, a pure function of the key (not of tf.random's global seed), and
traceable with a tensor key (an epoch inside `flat_map`)."""

import numpy as np
import tensorflow as tf

from florence_keras.data import keyed_shuffle


def _values(dataset):
    return [int(v) for v in dataset.as_numpy_iterator()]


def test_block_shuffle_permutes_within_blocks_only():
    got = _values(keyed_shuffle.block_shuffle(tf.data.Dataset.range(23), 5, [3, 1]))
    assert sorted(got) == list(range(23))
    for start in range(0, 23, 5):  # every block holds exactly its own elements (the last one is short)
        assert sorted(got[start:start + 5]) == list(range(start, min(start + 5, 23)))
    assert got != list(range(23))


def test_block_order_is_index_shuffle_of_the_folded_key():
    got = _values(keyed_shuffle.block_shuffle(tf.data.Dataset.range(10), 4, [7, 2]))
    expected = []
    for block, start in enumerate(range(0, 10, 4)):
        count = min(4, 10 - start)
        block_key = tf.random.experimental.stateless_fold_in(tf.constant([7, 2], tf.int64), block)
        order = tf.random.experimental.index_shuffle(tf.range(count, dtype=tf.int64), block_key,
                                                     tf.constant(count - 1, tf.int64)).numpy()
        expected += [start + int(i) for i in order]
    assert got == expected


def test_permute_slices_is_a_permutation_of_rows():
    columns = {"name": [f"f{i}" for i in range(9)], "size": np.arange(9, dtype=np.int64) * 10}
    rows = list(keyed_shuffle.permute_slices(columns, [1, 4]).as_numpy_iterator())
    assert sorted(int(r["size"]) for r in rows) == list(range(0, 90, 10))
    assert all(r["name"].decode() == f"f{int(r['size']) // 10}" for r in rows)  # columns stay aligned
    single = list(keyed_shuffle.permute_slices({"size": np.array([5], np.int64)}, [1, 4]).as_numpy_iterator())
    assert [int(r["size"]) for r in single] == [5]


def test_order_ignores_the_global_seed_and_takes_a_tensor_key():
    def epochs():  # the epoch is a tensor here, as in a positioned stream
        return tf.data.Dataset.range(3).flat_map(
            lambda epoch: keyed_shuffle.block_shuffle(tf.data.Dataset.range(6), 6, tf.stack([tf.constant(9, tf.int64),
                                                                                             epoch])))
    try:
        tf.random.set_seed(0)  # `Dataset.shuffle(seed=tensor)` fails to trace under this global seed
        under_zero = _values(epochs())
        tf.random.set_seed(1234)
        under_other = _values(epochs())
    finally:
        tf.random.set_seed(None)
    assert under_zero == under_other
    assert under_zero[:6] != under_zero[6:12]  # each epoch its own order

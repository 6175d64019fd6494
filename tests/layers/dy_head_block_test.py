"""DyHeadBlock: the whole block against NumPy (spatial -> scale -> level mean -> dynamic ReLU), round trip."""

import numpy as np

from florence_keras.layers.dy_head_block import DyHeadBlock
from tests.layers import dyhead_numpy


def _levels(sizes, channels=8, batch=2):
    return [np.random.default_rng(i).normal(size=(batch, h, w, channels)).astype("float32")
            for i, (h, w) in enumerate(sizes)]


def test_block_matches_numpy():
    levels = _levels([(8, 8), (4, 4), (2, 2)])
    block = DyHeadBlock(norm_groups=4, reduction=2)
    block.build([x.shape for x in levels])
    rng = np.random.default_rng(3)
    block.set_weights([rng.normal(scale=0.3, size=w.shape).astype("float32") for w in block.get_weights()])
    expected = dyhead_numpy.dy_head_block(levels, block)
    for got, want in zip(block(levels), expected):
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-4)


def test_level_mean_counts_two_branches_at_the_ends_and_three_in_the_middle():
    levels = _levels([(7, 5), (4, 3), (2, 2)], batch=1)
    block = DyHeadBlock(norm_groups=4)
    block.build([x.shape for x in levels])
    # Zero dynamic-ReLU weights: theta = 0.5, the plain ReLU. Scale gate: zero weights, bias 3, so pi = 1.
    block.task.set_weights([np.zeros_like(w) for w in block.task.get_weights()])
    block.scale.set_weights([np.zeros((8, 1), "float32"), np.full(1, 3.0, "float32")])
    branches = block.spatial(levels)
    for got, parts in zip(block(levels), branches):
        np.testing.assert_allclose(np.asarray(got), np.maximum(sum(np.asarray(p) for p in parts) / len(parts), 0),
                                   atol=1e-5)


def test_round_trip():
    dyhead_numpy.run_list_serialization_test(DyHeadBlock(norm_groups=2, reduction=2),
                                             _levels([(5, 3), (3, 2)], batch=1))

"""DynamicHead: identity at 0 blocks, 5 odd-sized levels, blocks in sequence, graph with unknown sizes, errors."""

import doctest
import importlib

import numpy as np
import pytest
import tensorflow as tf

from florence_keras.layers.dynamic_head import DynamicHead
from tests.layers import dyhead_numpy

ODD_SIZES = [(25, 19), (13, 10), (7, 5), (4, 3), (2, 2)]


def _levels(sizes, channels=8, batch=2):
    return [np.random.default_rng(i).normal(size=(batch, h, w, channels)).astype("float32")
            for i, (h, w) in enumerate(sizes)]


def test_zero_blocks_is_the_identity():
    levels = _levels(ODD_SIZES)
    head = DynamicHead(num_blocks=0, channels=8, norm_groups=4)
    for got, want in zip(head(levels), levels):
        np.testing.assert_array_equal(np.asarray(got), want)


def test_five_odd_levels_keep_shapes_and_blocks_run_in_sequence():
    levels = _levels(ODD_SIZES)
    head = DynamicHead(num_blocks=2, channels=8, norm_groups=4)
    out = head(levels)
    assert [tuple(y.shape) for y in out] == [x.shape for x in levels]
    assert all(np.all(np.isfinite(np.asarray(y))) for y in out)
    expected = head.blocks[1](head.blocks[0](levels))
    for got, want in zip(out, expected):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)


def test_unknown_sizes_in_a_graph():
    head = DynamicHead(num_blocks=1, channels=8, norm_groups=4)
    specs = [tf.TensorSpec((None, None, None, 8), tf.float32)] * 3
    head.build([s.shape for s in specs])
    fn = tf.function(lambda *xs: head(list(xs)), input_signature=specs)
    for sizes in ([(9, 7), (5, 4), (3, 2)], [(6, 10), (3, 5), (2, 3)]):
        levels = _levels(sizes, batch=1)
        for got, want in zip(fn(*levels), head(levels)):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def test_default_parameter_count():
    # Per block at 256 channels: offset conv 3*3*256*27+27, three DCN kernels 3*(9*256*256), three GroupNorms
    # 3*512, scale gate 257, dynamic ReLU 256*64+64 + 64*1024+1024.
    head = DynamicHead()
    head.build([(None, None, None, 256)] * 5)
    per_block = 3 * 3 * 256 * 27 + 27 + 3 * 9 * 256 * 256 + 3 * 512 + 257 + 256 * 64 + 64 + 64 * 1024 + 1024
    assert head.count_params() == 6 * per_block


def test_round_trip_and_bad_arguments():
    dyhead_numpy.run_list_serialization_test(DynamicHead(num_blocks=1, channels=8, norm_groups=2, reduction=2),
                           _levels([(5, 3), (3, 2)], batch=1))
    for kwargs, match in [(dict(num_blocks=-1), "num_blocks"), (dict(channels=0), "channels"),
                          (dict(channels=8, norm_groups=3), "norm_groups"), (dict(reduction=0), "reduction")]:
        with pytest.raises(ValueError, match=match):
            DynamicHead(**kwargs)
    with pytest.raises(ValueError, match="256"):
        DynamicHead()(_levels([(4, 4), (2, 2)]))


@pytest.mark.parametrize("name", ["modulated_deformable_conv2d", "scale_aware_attention", "spatial_aware_attention",
                                  "task_aware_attention", "dy_head_block", "dynamic_head"])
def test_docstring_examples(name):
    module = importlib.import_module(f"florence_keras.layers.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

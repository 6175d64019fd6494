"""SpatialAwareAttention: branches against a NumPy composition (DCNv2 loop, GroupNorm, resize), shapes, errors."""

import numpy as np
import pytest

from florence_keras.layers.spatial_aware_attention import SpatialAwareAttention
from tests.layers import dyhead_numpy


def _levels(sizes, channels=8, batch=1):
    return [np.random.default_rng(i).normal(size=(batch, h, w, channels)).astype("float32")
            for i, (h, w) in enumerate(sizes)]


def _randomise(layer, seed=0):
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=0.3 if w.ndim == 4 else 1.0, size=w.shape).astype("float32")
                       for w in layer.get_weights()])


@pytest.mark.parametrize("sizes", [[(8, 8), (4, 4), (2, 2)], [(7, 5), (4, 3), (2, 2)]])
def test_branches_match_numpy(sizes):
    levels = _levels(sizes)
    layer = SpatialAwareAttention(norm_groups=4)
    layer.build([x.shape for x in levels])
    _randomise(layer)
    params = dyhead_numpy.spatial_params(layer)
    offsets = dyhead_numpy.conv_same(levels[0], params["offset_kernel"], params["offset_bias"])[..., :18]
    assert np.abs(offsets).mean() > 0.5  # offsets of a pixel or so: the sampling really moves
    actual = layer(levels)
    expected = dyhead_numpy.spatial_attention(levels, params, groups=4)
    assert [len(branches) for branches in actual] == [2, 3, 2]
    for level, (got, want) in enumerate(zip(actual, expected)):
        for branch, (g, w) in enumerate(zip(got, want)):
            assert tuple(g.shape) == levels[level].shape
            np.testing.assert_allclose(np.asarray(g), w, atol=1e-4, err_msg=f"level {level} branch {branch}")


def test_single_level_and_round_trip():
    levels = _levels([(5, 3), (3, 2)])
    out = SpatialAwareAttention(norm_groups=2)(levels[:1])
    assert len(out) == 1 and len(out[0]) == 1 and tuple(out[0][0].shape) == (1, 5, 3, 8)
    dyhead_numpy.run_list_serialization_test(SpatialAwareAttention(norm_groups=2), levels)


def test_bad_inputs():
    with pytest.raises(ValueError, match="norm_groups"):
        SpatialAwareAttention(norm_groups=0)
    with pytest.raises(ValueError, match="divide"):
        SpatialAwareAttention(norm_groups=3)(_levels([(4, 4), (2, 2)]))
    with pytest.raises(ValueError, match="half"):
        SpatialAwareAttention(norm_groups=4)(_levels([(8, 8), (3, 4)]))
    with pytest.raises(ValueError, match="same known C"):
        SpatialAwareAttention(norm_groups=4)([_levels([(4, 4)])[0], _levels([(2, 2)], channels=4)[0]])

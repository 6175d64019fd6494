"""Every layer: get_config mirrors the constructor and round-trips; shapes; bad args."""

import numpy as np
import pytest

from florence_keras.layers import ConvTokenEmbedding
from florence_keras.layers import DropPath
from florence_keras.layers import PatchMerging
from florence_keras.layers import SwinTransformerBlock
from florence_keras.layers import WindowAttention
from tests.test_case import random_images
from tests.test_case import run_serialization_test


def test_window_attention_round_trip():
    run_serialization_test(WindowAttention(8, 2, (2, 2)), random_images(3, 4, 8, 1)[..., 0].reshape(3, 4, 8))


def test_window_attention_matches_numpy():
    layer = WindowAttention(4, 2, (2, 1), qkv_bias=True)
    x = np.random.default_rng(1).random((1, 2, 4)).astype("float32")
    out = layer(x).numpy()
    wqkv, bqkv = layer.qkv.get_weights()
    table = layer.relative_position_bias_table.numpy()
    wo, bo = layer.projection.get_weights()
    qkv = (x[0] @ wqkv + bqkv).reshape(2, 3, 2, 2)  # tokens, (q,k,v), heads, d
    # offsets for a (2, 1) window: table rows index (dy + 1) * 1 + 0
    bias_rows = np.array([[1, 0], [2, 1]])
    heads = []
    for h in range(2):
        q, k, v = qkv[:, 0, h], qkv[:, 1, h], qkv[:, 2, h]
        s = q @ k.T / np.sqrt(2) + table[bias_rows, h]
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        heads.append(p @ v)
    expected = np.concatenate(heads, axis=-1) @ wo + bo
    np.testing.assert_allclose(out[0], expected, atol=1e-5)


@pytest.mark.parametrize("spatial,window,shift", [((5, 7), (2, 2), (1, 1)), ((2, 4, 4), (2, 2, 2), (1, 1, 1))])
def test_swin_block_round_trip_2d_and_3d(spatial, window, shift):
    x = np.random.default_rng(0).random((2,) + spatial + (8,)).astype("float32")
    run_serialization_test(SwinTransformerBlock(8, 2, window, shift, drop_path=0.1), x)


def test_conv_token_embedding_shapes_and_round_trip():
    x = random_images(1, 30, 22, 3)
    layer = ConvTokenEmbedding(8, kernel_size=7, strides=4)
    assert tuple(layer(x).shape) == (1, 8, 6, 8)
    run_serialization_test(ConvTokenEmbedding(8, kernel_size=3, strides=2), x)
    linear = ConvTokenEmbedding(8, kernel_size=4, strides=4, padding="end")
    assert tuple(linear(x).shape) == (1, 8, 6, 8)
    video = ConvTokenEmbedding(8, kernel_size=(2, 3, 3), strides=(2, 2, 2))
    assert tuple(video(np.zeros((1, 4, 10, 10, 3), "float32")).shape) == (1, 2, 5, 5, 8)


def test_conv_stem_padding_is_cvt():
    # CvT's 7x7/4 stem pads 2 on each side: at 224 it gives 56x56.
    layer = ConvTokenEmbedding(4, kernel_size=7, strides=4)
    layer.build((None, 224, 224, 3))
    assert layer.padding_for((224, 224)) == [(2, 1), (2, 1)]


def test_patch_merging_order_matches_swin():
    x = np.arange(2 * 2 * 3, dtype="float32").reshape(1, 2, 2, 3)
    layer = PatchMerging(output_dim=12)
    layer.build(x.shape)
    layer.projection.set_weights([np.eye(12, dtype="float32")])
    layer.norm.set_weights([np.ones(12, "float32"), np.zeros(12, "float32")])
    out = layer(x).numpy()[0, 0, 0]
    cat = np.concatenate([x[0, 0, 0], x[0, 1, 0], x[0, 0, 1], x[0, 1, 1]])
    expected = (cat - cat.mean()) / np.sqrt(cat.var() + 1e-5)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    run_serialization_test(PatchMerging(), random_images(1, 5, 4, 8))


def test_drop_path_statistics_and_identity():
    x = np.ones((4000, 3), "float32")
    layer = DropPath(0.25, seed=1)
    np.testing.assert_array_equal(layer(x, training=False), x)
    y = layer(x, training=True).numpy()
    kept = (y[:, 0] > 0).mean()
    assert abs(kept - 0.75) < 0.03
    np.testing.assert_allclose(y[y > 0], 1 / 0.75, rtol=1e-6)
    assert (y == y[:, :1]).all()  # whole rows dropped


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: WindowAttention(10, 3, (2, 2)), "num_heads"),
        (lambda: WindowAttention(8, 2, (2,)), "window_size"),
        (lambda: SwinTransformerBlock(8, 2, (2, 2), (2, 2)), "shift_size"),
        (lambda: ConvTokenEmbedding(8, 3, 2, padding="same"), "padding"),
        (lambda: DropPath(1.0), "rate"),
    ],
)
def test_bad_arguments_are_quoted(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_block_rejects_wrong_rank():
    block = SwinTransformerBlock(8, 2, (2, 2), (0, 0))
    with pytest.raises(ValueError, match="static 2-D map"):
        block(np.zeros((1, 4, 8), "float32"))

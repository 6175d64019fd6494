import numpy as np
import pytest

from florence_keras.models.coswin_backbone import CoSwinBackbone
from tests.test_case import random_images


def _tiny(**kwargs):
    args = dict(embed_dim=8, depths=[1, 2], num_heads=[1, 2], window_size=2,
                image_shape=(30, 26, 3), drop_path_rate=0.1)
    args.update(kwargs)
    return CoSwinBackbone(**args)


def test_outputs_and_pyramid_shapes():
    backbone = _tiny()
    out = backbone(random_images(2, 30, 26))
    # conv stem 7x7/4 -> ceil(30/4)=8, ceil(26/4)=7; then 3x3/2 -> 4, 4
    assert tuple(out["feature_map"].shape) == (2, 4, 4, 16)
    assert tuple(out["pooled_output"].shape) == (2, 16)
    shapes = {k: tuple(v.shape) for k, v in backbone.pyramid_outputs.items()}
    assert shapes == {"P2": (None, 8, 7, 8), "P3": (None, 4, 4, 16)}
    np.testing.assert_allclose(
        out["pooled_output"], out["feature_map"].numpy().mean(axis=(1, 2)), atol=1e-6
    )


def test_config_round_trip_and_weights_independent_of_size():
    backbone = _tiny()
    clone = CoSwinBackbone.from_config(backbone.get_config())
    assert clone.get_config() == backbone.get_config()
    bigger = _tiny(image_shape=(45, 61, 3))
    bigger.set_weights(backbone.get_weights())  # same weight shapes at another size
    assert bigger.count_params() == backbone.count_params()


def _layer_norm(x, gamma, beta, epsilon):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + epsilon) * gamma + beta


def _global_attention_block(block, x, table_window):
    """A Swin block on a map no larger than its window, written out in numpy.

    Swin's rule makes such a block one window covering the whole map, unshifted: plain multi-head self-attention
    over all tokens, with the bias of offset (dy, dx) read from row `(dy + W - 1) * (2W - 1) + (dx + W - 1)` of
    the `(2W - 1)²`-row table of the configured window W. Then the MLP with exact (erf) GELU.
    """
    from scipy.special import erf

    w = {v.path.split("/", 1)[1]: np.asarray(v.numpy(), np.float64) for v in block.weights}
    batch, height, width, channels = x.shape
    heads = w["attention/relative_position_bias_table"].shape[1]
    head_dim = channels // heads
    tokens = x.reshape(batch, height * width, channels).astype(np.float64)
    normed = _layer_norm(tokens, w["norm_before/gamma"], w["norm_before/beta"], block.layer_norm_epsilon)
    qkv = normed @ w["attention/qkv/kernel"] + w["attention/qkv/bias"]
    qkv = qkv.reshape(batch, height * width, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
    coords = [(i, j) for i in range(height) for j in range(width)]
    rows = [[(qi - ki + table_window - 1) * (2 * table_window - 1) + (qj - kj + table_window - 1)
             for ki, kj in coords] for qi, qj in coords]
    bias = w["attention/relative_position_bias_table"][np.array(rows)].transpose(2, 0, 1)  # (heads, N, N)
    scores = qkv[0] @ qkv[1].swapaxes(-1, -2) / np.sqrt(head_dim) + bias
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ qkv[2]).transpose(0, 2, 1, 3).reshape(batch, height * width, channels)
    tokens = tokens + context @ w["attention/projection/kernel"] + w["attention/projection/bias"]
    hidden = _layer_norm(tokens, w["norm_after/gamma"], w["norm_after/beta"], block.layer_norm_epsilon)
    hidden = hidden @ w["mlp_dense_1/kernel"] + w["mlp_dense_1/bias"]
    hidden = 0.5 * hidden * (1 + erf(hidden / np.sqrt(2)))
    tokens = tokens + hidden @ w["mlp_dense_2/kernel"] + w["mlp_dense_2/bias"]
    return tokens.reshape(batch, height, width, channels)


def test_stage_smaller_than_window_is_global_attention():
    # 20x20 -> 5x5 -> 3x3 with window 4: in the last stage the 3x3 map is smaller than the window, so both its
    # blocks (the second one configured with shift 2) attend over the whole map, unshifted, with the 5x5 centre
    # of the 7x7 bias table (Swin's rule). Checked against that computation written out in numpy.
    backbone = _tiny(window_size=4, image_shape=(20, 20, 3), drop_path_rate=0.0)
    rng = np.random.default_rng(1)
    for variable in backbone.weights:  # a bias table far from zero, so a wrongly indexed offset shows
        if variable.path.endswith("relative_position_bias_table"):
            variable.assign(rng.normal(size=variable.shape).astype("float32"))
    images = random_images(2, 20, 20)
    features = backbone.forward_features(images)
    stage_input = np.asarray(backbone.downsamplers[0](features["pyramid"]["P2"]))
    assert stage_input.shape == (2, 3, 3, 16)
    blocks = [backbone.get_layer(f"stage_1_block_{i}") for i in range(2)]
    assert blocks[1].shift_size == (2, 2)  # configured shifted; Swin's rule turns the shift off
    expected = _global_attention_block(blocks[1], _global_attention_block(blocks[0], stage_input, 4), 4)
    np.testing.assert_allclose(np.asarray(features["pyramid"]["P3"]), expected, atol=1e-5)
    # The check can fail: the same computation reading the table as if the window were 3 is far off.
    wrong = _global_attention_block(blocks[1], _global_attention_block(blocks[0], stage_input, 3), 3)
    assert np.abs(np.asarray(features["pyramid"]["P3"]) - wrong).max() > 1e-2


def test_drop_path_only_in_training():
    backbone = _tiny(drop_path_rate=0.5)
    x = random_images(4, 30, 26)
    np.testing.assert_array_equal(backbone(x)["pooled_output"], backbone(x)["pooled_output"])
    assert not np.allclose(backbone(x, training=True)["pooled_output"], backbone(x)["pooled_output"])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"patch_embedding": "overlap"}, "patch_embedding"),
        ({"depths": [1], "num_heads": [1, 2]}, "depths"),
        ({"image_shape": (None, 30, 3)}, "image_shape"),
        ({"num_heads": [3, 2]}, "divisible"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _tiny(**kwargs)


def test_wrong_input_rank_or_channels():
    backbone = _tiny()
    with pytest.raises(ValueError):
        backbone(np.zeros((2, 30, 26), "float32"))
    with pytest.raises(ValueError):
        backbone(np.zeros((2, 30, 26, 4), "float32"))


def test_other_resolution_uses_same_layers():
    # Florence's 384-pixel stage: a model built at one size embeds another size with
    # the same weights, exactly as a model built at that size would.
    from florence_keras.models import presets
    from tests.model_fixtures import tiny_test_backbone
    from tests.model_fixtures import tiny_test_config

    small = tiny_test_backbone(32)
    large = presets.build_backbone(tiny_test_config(48))
    large.set_weights(small.get_weights())
    x = random_images(2, 48, 48)
    np.testing.assert_allclose(small.embed_images(x), large.embed_images(x), atol=1e-6)
    features = small.image_encoder.forward_features(x)
    assert tuple(features["pyramid"]["P2"].shape) == (2, 12, 12, 16)

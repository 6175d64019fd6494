"""The METER fusion layers against an independent NumPy forward, and padding invariance."""

import keras
import numpy as np
import pytest
from scipy.special import erf

from florence_keras.layers.co_attention_layer import CoAttentionLayer
from florence_keras.layers.cross_attention_block import CrossAttentionBlock
from florence_keras.layers.fusion_encoder import FusionEncoder


def _np_layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _np_attention(weights, prefix, query, context, key_mask, heads):
    def dense(name, x):
        return x @ weights[f"{prefix}/{name}/kernel"] + weights[f"{prefix}/{name}/bias"]

    q, k, v = dense("query", query), dense("key", context), dense("value", context)
    batch, lq, dim = q.shape
    hd = dim // heads
    split = lambda t: t.reshape(batch, -1, heads, hd).transpose(0, 2, 1, 3)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
    if key_mask is not None:
        scores = np.where(np.asarray(key_mask, bool)[:, None, None, :], scores, -np.inf)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    probs = scores / scores.sum(-1, keepdims=True)
    out = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, lq, dim)
    return dense("output", out)


def _np_block(weights, prefix, x, context, x_mask, context_mask, heads, eps):
    ln = lambda name, t: _np_layer_norm(t, weights[f"{prefix}/{name}/gamma"], weights[f"{prefix}/{name}/beta"], eps)  # noqa: E731,E501
    x = ln("self_norm", x + _np_attention(weights, f"{prefix}/self_attention", x, x, x_mask, heads))
    x = ln("cross_norm", x + _np_attention(weights, f"{prefix}/cross_attention", x, context, context_mask, heads))
    hidden = x @ weights[f"{prefix}/intermediate/kernel"] + weights[f"{prefix}/intermediate/bias"]
    hidden = 0.5 * hidden * (1 + erf(hidden / np.sqrt(2)))
    ffn = hidden @ weights[f"{prefix}/ffn_output/kernel"] + weights[f"{prefix}/ffn_output/bias"]
    return ln("ffn_norm", x + ffn)


def _weights(layer):
    # Paths relative to the layer: "<layer name>/text_block/self_attention/query/kernel" -> strip the first part.
    return {v.path.split("/", 1)[1]: np.asarray(v.numpy(), np.float64) for v in layer.weights}


def _randomise(layer, seed):
    rng = np.random.default_rng(seed)
    for variable in layer.weights:  # non-trivial norms and biases too
        variable.assign(rng.normal(0, 0.3, variable.shape).astype("float32"))


def test_co_attention_layer_matches_numpy_forward():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    text = rng.normal(size=(2, 5, 16)).astype("float32")
    image = rng.normal(size=(2, 7, 16)).astype("float32")
    text_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], "int32")
    layer = CoAttentionLayer(16, 4, intermediate_dim=24, dropout=0.1, layer_norm_epsilon=1e-6)
    layer(text, image, text_mask=text_mask)
    _randomise(layer, 1)
    got_text, got_image = layer(text, image, text_mask=text_mask, training=False)
    w = _weights(layer)
    t64, i64 = text.astype(np.float64), image.astype(np.float64)
    want_text = _np_block(w, "text_block", t64, i64, text_mask, None, 4, 1e-6)
    want_image = _np_block(w, "image_block", i64, t64, None, text_mask, 4, 1e-6)
    valid = text_mask.astype(bool)
    text_error = np.abs(np.asarray(got_text) - want_text)[valid].max()
    image_error = np.abs(np.asarray(got_image) - want_image).max()
    print(f"co-attention layer vs NumPy: text {text_error:.2e}, image {image_error:.2e}")
    assert text_error < 1e-4 and image_error < 1e-4


def test_cross_attention_block_matches_numpy_without_masks():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 4, 8)).astype("float32")
    context = rng.normal(size=(3, 6, 8)).astype("float32")
    block = CrossAttentionBlock(8, 2)
    block(x, context)
    _randomise(block, 3)
    weights = {v.path.split("/", 1)[1]: np.asarray(v.numpy(), np.float64) for v in block.weights}
    want = _np_block({f"b/{k}": v for k, v in weights.items()}, "b", x.astype(np.float64),
                     context.astype(np.float64), None, None, 2, 1e-12)
    assert np.abs(np.asarray(block(x, context)) - want).max() < 1e-4


def _np_cross_probabilities(weights, prefix, x, context, x_mask, context_mask, heads, eps):
    """The text block's cross-attention probabilities: queries from x after its self-attention sub-layer."""
    ln = lambda name, t: _np_layer_norm(t, weights[f"{prefix}/{name}/gamma"], weights[f"{prefix}/{name}/beta"], eps)  # noqa: E731,E501
    x = ln("self_norm", x + _np_attention(weights, f"{prefix}/self_attention", x, x, x_mask, heads))
    dense = lambda name, t: t @ weights[f"{prefix}/cross_attention/{name}/kernel"] + weights[  # noqa: E731
        f"{prefix}/cross_attention/{name}/bias"]
    q, k = dense("query", x), dense("key", context)
    batch, hd = q.shape[0], q.shape[-1] // heads
    split = lambda t: t.reshape(batch, -1, heads, hd).transpose(0, 2, 1, 3)  # noqa: E731
    scores = split(q) @ split(k).transpose(0, 1, 3, 2) / np.sqrt(hd)
    if context_mask is not None:
        scores = np.where(np.asarray(context_mask, bool)[:, None, None, :], scores, -np.inf)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    return scores / scores.sum(-1, keepdims=True)


def test_returned_attention_is_the_text_streams_cross_attention():
    """`return_attention` gives each layer's text-to-image attention probabilities (before dropout), as NumPy
    computes them, and leaves the outputs unchanged."""
    rng = np.random.default_rng(4)
    text = rng.normal(size=(2, 5, 16)).astype("float32")
    image = rng.normal(size=(2, 7, 16)).astype("float32")
    text_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], "int32")
    layer = CoAttentionLayer(16, 4, intermediate_dim=24, layer_norm_epsilon=1e-6)
    layer(text, image, text_mask=text_mask)
    _randomise(layer, 5)
    got_text, got_image, attention = layer(text, image, text_mask=text_mask, return_attention=True)
    plain_text, plain_image = layer(text, image, text_mask=text_mask)
    np.testing.assert_array_equal(np.asarray(got_text), np.asarray(plain_text))
    np.testing.assert_array_equal(np.asarray(got_image), np.asarray(plain_image))
    want = _np_cross_probabilities(_weights(layer), "text_block", text.astype(np.float64), image.astype(np.float64),
                                   text_mask, None, 4, 1e-6)
    assert tuple(attention.shape) == (2, 4, 5, 7)
    assert np.abs(np.asarray(attention) - want).max() < 1e-5
    fusion = FusionEncoder(hidden_dim=16, num_layers=2, num_heads=4, dropout=0.5)
    out = fusion(text, image, text_mask=text_mask, training=True, return_attention=True)
    assert len(out["text_to_image_attention"]) == 2 and "text_to_image_attention" not in fusion(text, image)
    for weights in out["text_to_image_attention"]:  # probabilities, dropout or not
        np.testing.assert_allclose(np.asarray(weights).sum(-1), 1.0, atol=1e-5)


def test_padded_text_tokens_change_nothing():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(4)
    fusion = FusionEncoder(hidden_dim=16, num_layers=2, num_heads=4, dropout=0.0)
    text = rng.normal(size=(2, 4, 12)).astype("float32")
    image = rng.normal(size=(2, 5, 20)).astype("float32")
    short = fusion(text, image, text_mask=np.ones((2, 4), "int32"))
    # 3 padded tokens of arbitrary content, masked out.
    padded_text = np.concatenate([text, rng.normal(size=(2, 3, 12)).astype("float32") * 10], axis=1)
    mask = np.concatenate([np.ones((2, 4)), np.zeros((2, 3))], axis=1).astype("int32")
    long = fusion(padded_text, image, text_mask=mask)
    other = fusion(np.concatenate([text, -padded_text[:, 4:]], axis=1), image, text_mask=mask)
    for out in (long, other):
        assert np.abs(np.asarray(out["pooled_output"]) - np.asarray(short["pooled_output"])).max() < 1e-5
        assert np.abs(np.asarray(out["image_sequence"]) - np.asarray(short["image_sequence"])).max() < 1e-5
        assert np.abs(np.asarray(out["text_sequence"])[:, :4] - np.asarray(short["text_sequence"])).max() < 1e-5
    # Unmasked, the same extra tokens do change the result (the mask is what protects it).
    unmasked = fusion(padded_text, image)
    assert np.abs(np.asarray(unmasked["image_sequence"]) - np.asarray(short["image_sequence"])).max() > 1e-3


def test_fusion_encoder_pooler_and_token_types():
    fusion = FusionEncoder(hidden_dim=8, num_layers=1, num_heads=2, dropout=0.0)
    text = np.zeros((1, 3, 4), "float32")
    image = np.zeros((1, 2, 4), "float32")
    out = fusion(text, image)
    assert tuple(out["pooled_output"].shape) == (1, 16)
    pooled = np.asarray(out["pooled_output"])
    # The pooler: tanh(W h[:, 0] + b) of each stream, text first.
    want_text = np.tanh(np.asarray(out["text_sequence"])[:, 0] @ fusion.text_pooler.kernel.numpy()
                        + fusion.text_pooler.bias.numpy())
    want_image = np.tanh(np.asarray(out["image_sequence"])[:, 0] @ fusion.image_pooler.kernel.numpy()
                         + fusion.image_pooler.bias.numpy())
    np.testing.assert_allclose(pooled, np.concatenate([want_text, want_image], -1), atol=1e-6)
    assert fusion.token_type_embedding.shape == (2, 8)


def test_config_round_trip_and_defaults():
    fusion = FusionEncoder()
    assert (fusion.hidden_dim, fusion.num_layers, fusion.num_heads, fusion.intermediate_dim) == (768, 6, 12, 3072)
    small = FusionEncoder(hidden_dim=8, num_layers=2, num_heads=2, dropout=0.0)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(small))
    assert clone.get_config() == small.get_config()
    with pytest.raises(ValueError, match="divisible"):
        CrossAttentionBlock(10, 3)


@pytest.mark.parametrize("name", ["florence_keras.layers.cross_attention_block",
                                  "florence_keras.layers.co_attention_layer", "florence_keras.layers.fusion_encoder"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

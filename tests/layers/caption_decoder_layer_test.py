"""CaptionDecoderLayer / CaptionDecoder against a NumPy forward; causal and padding masks respected."""

import keras
import numpy as np
from scipy.special import erf

from florence_keras.layers.caption_decoder import CaptionDecoder
from florence_keras.layers.caption_decoder_layer import CaptionDecoderLayer


def _layer_norm(x, layer):
    gamma, beta = (np.asarray(w) for w in layer.weights)
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + layer.epsilon) * gamma + beta


def _dense(x, layer):
    kernel, bias = (np.asarray(w, np.float64) for w in layer.weights)
    return x @ kernel + bias


def _attention(q, k, v, heads, mask):
    b, tq, d = q.shape
    hd = d // heads
    split = lambda x: x.reshape(b, -1, heads, hd).transpose(0, 2, 1, 3)  # noqa: E731
    scores = split(q) @ split(k).transpose(0, 1, 3, 2) / np.sqrt(hd)
    if mask is not None:
        scores = np.where(mask[:, None], scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return (weights @ split(v)).transpose(0, 2, 1, 3).reshape(b, tq, d)


def numpy_layer(layer, x, image, padding_mask):
    """An independent NumPy forward of one pre-LN decoder layer (float64)."""
    t = x.shape[1]
    mask = np.tril(np.ones((t, t), bool))[None] & padding_mask[:, None, :].astype(bool)
    h = _layer_norm(x, layer.self_norm)
    q, k, v = (_dense(h, d) for d in layer.self_qkv)
    x = x + _dense(_attention(q, k, v, layer.num_heads, mask), layer.self_output)
    h = _layer_norm(x, layer.cross_norm)
    q = _dense(h, layer.cross_qkv[0])
    k, v = _dense(image, layer.cross_qkv[1]), _dense(image, layer.cross_qkv[2])
    x = x + _dense(_attention(q, k, v, layer.num_heads, None), layer.cross_output)
    h = _dense(_layer_norm(x, layer.ffn_norm), layer.ffn_in)
    h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
    return x + _dense(h, layer.ffn_out)


def _randomise(layer, seed):
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(0, 0.3, weight.shape).astype("float32"))


def test_layer_matches_numpy_forward():
    rng = np.random.default_rng(0)
    layer = CaptionDecoderLayer(hidden_dim=16, num_heads=4, intermediate_dim=24)
    x = rng.normal(size=(2, 5, 16)).astype("float32")
    image = rng.normal(size=(2, 3, 16)).astype("float32")
    padding = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.int32)
    layer(x, image, padding_mask=padding)
    _randomise(layer, 1)  # non-trivial norms and biases
    out = np.asarray(layer(x, image, padding_mask=padding))
    expected = numpy_layer(layer, x.astype(np.float64), image.astype(np.float64), padding)
    np.testing.assert_allclose(out, expected, atol=2e-4, rtol=1e-4)


def test_layer_is_causal_and_ignores_padding():
    rng = np.random.default_rng(2)
    layer = CaptionDecoderLayer(hidden_dim=8, num_heads=2, intermediate_dim=16)
    x = rng.normal(size=(1, 6, 8)).astype("float32")
    image = rng.normal(size=(1, 4, 8)).astype("float32")
    base = np.asarray(layer(x, image))
    changed = x.copy()
    changed[:, 3:] = rng.normal(size=(1, 3, 8))  # future positions 3..5
    out = np.asarray(layer(changed, image))
    np.testing.assert_array_equal(out[:, :3], base[:, :3])  # earlier positions: bit-identical
    assert np.abs(out[:, 3:] - base[:, 3:]).max() > 1e-3
    # A padded position changes nothing at the others (even a later real one cannot see it: mask (B, T)).
    padding = np.array([[1, 1, 0, 1, 1, 1]])
    changed = x.copy()
    changed[:, 2] += 5.0
    a = np.asarray(layer(x, image, padding_mask=padding))
    b = np.asarray(layer(changed, image, padding_mask=padding))
    keep = [0, 1, 3, 4, 5]
    np.testing.assert_allclose(a[:, keep], b[:, keep], atol=1e-6)


def test_decoder_future_tokens_change_nothing_and_config_round_trip():
    rng = np.random.default_rng(3)
    decoder = CaptionDecoder(vocabulary_size=11, max_length=7, num_image_tokens=4, hidden_dim=8, num_layers=2,
                             num_heads=2, intermediate_dim=16)
    image = rng.normal(size=(2, 4, 5)).astype("float32")
    ids = rng.integers(0, 11, (2, 7)).astype("int32")
    logits = np.asarray(decoder(ids, image))
    assert logits.shape == (2, 7, 11)
    changed = ids.copy()
    changed[:, 4:] = (changed[:, 4:] + 1) % 11
    np.testing.assert_array_equal(np.asarray(decoder(changed, image))[:, :4], logits[:, :4])
    # A prefix alone gives the same logits as the full row (what generation without a cache relies on).
    np.testing.assert_allclose(np.asarray(decoder(ids[:, :3], image)), logits[:, :3], atol=1e-5)
    clone = CaptionDecoder.from_config(decoder.get_config())
    clone(ids, image)
    clone.set_weights(decoder.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(ids, image)), logits)
    layer_config = decoder.decoder_layers[0].get_config()
    assert {k: layer_config[k] for k in ("hidden_dim", "num_heads", "intermediate_dim")} == {
        "hidden_dim": 8, "num_heads": 2, "intermediate_dim": 16}
    keras.layers.deserialize(keras.layers.serialize(decoder.decoder_layers[0]))

"""MaskedLMHead: the tied decoder against NumPy, the untied variant, config round trip."""

import keras
import numpy as np
import pytest

from florence_keras.layers.masked_lm_head import MaskedLMHead


def _gelu(x):
    from math import erf

    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


def test_tied_head_matches_numpy():
    rng = np.random.default_rng(0)
    head = MaskedLMHead(vocabulary_size=7, embedding_dim=4, layer_norm_epsilon=1e-5)
    hidden = rng.normal(size=(2, 3, 5)).astype("float32")
    embeddings = rng.normal(size=(7, 4)).astype("float32")
    logits = np.asarray(head(hidden, embeddings))
    head.bias.assign(rng.normal(size=7).astype("float32"))
    logits = np.asarray(head(hidden, embeddings))
    kernel, bias = (np.asarray(w, np.float64) for w in head.transform.weights)
    x = _gelu(hidden.astype(np.float64) @ kernel + bias)
    x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    x = x * np.asarray(head.norm.gamma) + np.asarray(head.norm.beta)
    expected = x @ embeddings.T.astype(np.float64) + np.asarray(head.bias)
    assert np.abs(logits - expected).max() < 1e-5
    with pytest.raises(ValueError, match="embeddings"):
        head(hidden)


def test_untied_head_and_config_round_trip():
    head = MaskedLMHead(vocabulary_size=9, embedding_dim=6, tied=False)
    assert tuple(head(np.zeros((4, 6), "float32")).shape) == (4, 9)
    assert len(head.trainable_weights) == 6  # transform, norm, decoder (kernel + bias each)
    clone = MaskedLMHead.from_config(head.get_config())
    assert clone.get_config() == head.get_config()
    restored = keras.layers.deserialize(keras.layers.serialize(head))
    assert isinstance(restored, MaskedLMHead) and not restored.tied


def test_docstring_example_runs():
    import doctest
    import importlib

    module = importlib.import_module("florence_keras.layers.masked_lm_head")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0

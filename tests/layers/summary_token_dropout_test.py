"""SummaryTokenDropout: the first token zeroed for the right fraction of examples, nothing else touched, the identity
at inference; inside an `example_window` the decisions are rows of the global batch's draw."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from florence_keras.layers.example_window import example_window
from florence_keras.layers.summary_token_dropout import SummaryTokenDropout


def _tokens(rows, length=4, width=3, seed=0):
    return np.random.default_rng(seed).normal(size=(rows, length, width)).astype("float32") + 5.0  # never 0


def test_identity_at_inference_and_at_rate_zero():
    x = _tokens(6)
    layer = SummaryTokenDropout(0.5, seed=1)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    np.testing.assert_array_equal(np.asarray(SummaryTokenDropout(0.0)(x, training=True)), x)
    assert not SummaryTokenDropout(0.0).variables  # no generator, no state, when there is nothing to draw


def test_rate_one_zeroes_exactly_the_first_token():
    x = _tokens(5)
    y = np.asarray(SummaryTokenDropout(1.0)(x, training=True))
    expected = x.copy()
    expected[:, 0] = 0.0
    np.testing.assert_array_equal(y, expected)


def test_rate_is_the_fraction_of_examples_and_only_whole_first_tokens_are_dropped():
    rows, rate = 4000, 0.3
    x = _tokens(rows, seed=2)
    y = np.asarray(SummaryTokenDropout(rate, seed=3)(x, training=True))
    np.testing.assert_array_equal(y[:, 1:], x[:, 1:])  # the other tokens are never touched or rescaled
    dropped = np.all(y[:, 0] == 0.0, axis=-1)
    kept = np.all(y[:, 0] == x[:, 0], axis=-1)
    assert np.all(dropped ^ kept)  # one decision per example: the whole token zeroed, or the token unchanged
    # Binomial(4000, 0.3): std 29 examples, so +-4.5 std is 0.3 +- 0.033.
    assert abs(dropped.mean() - rate) < 0.033


def test_same_seed_same_decisions_and_a_new_draw_per_call():
    x = _tokens(64)
    a, b = SummaryTokenDropout(0.5, seed=7), SummaryTokenDropout(0.5, seed=7)
    first_a, first_b = np.asarray(a(x, training=True)), np.asarray(b(x, training=True))
    np.testing.assert_array_equal(first_a, first_b)
    assert not np.array_equal(np.asarray(a(x, training=True)), first_a)  # the generator advances


def test_window_rows_are_the_global_draw():
    layer = SummaryTokenDropout(0.5, seed=11)
    x = _tokens(8)
    start = [tf.convert_to_tensor(v).numpy() for v in layer.non_trainable_variables]
    whole = np.asarray(layer(x, training=True))
    for variable, value in zip(layer.non_trainable_variables, start):
        variable.assign(value)
    with example_window(4, 8):
        part = np.asarray(layer(x[4:], training=True))
    np.testing.assert_array_equal(part, whole[4:])


def test_config_round_trip_and_bad_rates():
    layer = SummaryTokenDropout(0.25, seed=5, name="drop")
    again = SummaryTokenDropout.from_config(layer.get_config())
    assert again.rate == 0.25 and again.seed == 5 and again.name == "drop"
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(revived, SummaryTokenDropout) and revived.rate == 0.25
    for bad in (-0.1, 1.5, True, "0.3", None):
        with pytest.raises(ValueError, match="rate"):
            SummaryTokenDropout(bad)

"""DropPath: per-example masks with the right rate and scale; inside an `example_window` the masks are rows of the
global batch's, so any split of the batch (replicas, gradient-cache chunks) drops the same examples."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from florence_keras.layers.drop_path import DropPath
from florence_keras.layers.example_window import current_example_window
from florence_keras.layers.example_window import example_window


def _state(layer):
    return [tf.convert_to_tensor(v).numpy() for v in layer.non_trainable_variables]


def _restore(layer, state):
    for variable, value in zip(layer.non_trainable_variables, state):
        variable.assign(value)


def test_identity_at_inference_and_per_example_masks_in_training():
    layer = DropPath(0.5, seed=3)
    x = np.ones((400, 3, 2), "float32")
    np.testing.assert_array_equal(layer(x, training=False), x)
    y = np.asarray(layer(x, training=True))
    per_example = y.reshape(400, -1)
    assert set(np.unique(per_example)) <= {0.0, 2.0}  # dropped, or kept and scaled by 1 / (1 - rate)
    assert np.all(per_example.min(axis=1) == per_example.max(axis=1))  # one decision per example
    assert 0.4 < np.mean(per_example[:, 0] == 0.0) < 0.6


def test_window_rows_are_the_global_draw():
    layer = DropPath(0.5, seed=7)
    x = np.ones((8, 4), "float32")
    start = _state(layer)
    whole = np.asarray(layer(x, training=True))
    after_whole = _state(layer)
    parts = []
    for offset in (0, 4):  # two "replicas" of 4 rows, each from the same seed state
        _restore(layer, start)
        with example_window(offset, 8):
            parts.append(np.asarray(layer(x[:4], training=True)))
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert [np.array_equal(a, b) for a, b in zip(_state(layer), after_whole)] == [True] * len(after_whole)
    # Without the window each part draws its own 4 masks: the first half of the global draw, twice.
    _restore(layer, start)
    np.testing.assert_array_equal(np.asarray(layer(x[:4], training=True)), whole[:4])
    assert not np.array_equal(whole[:4], whole[4:])  # (so the window changed something)


def test_window_offset_may_be_a_tensor_inside_a_function():
    layer = DropPath(0.5, seed=11)
    x = np.ones((6, 2), "float32")
    start = _state(layer)
    whole = np.asarray(layer(x, training=True))

    @tf.function
    def rows(offset):
        with example_window(offset, 6):
            return layer(x[:2], training=True)

    for offset in (0, 2, 4):
        _restore(layer, start)
        np.testing.assert_array_equal(rows(tf.constant(offset)), whole[offset:offset + 2])


def test_windows_nest_and_unwind():
    assert current_example_window() is None
    with example_window(2, 8):
        with example_window(6, 8):
            assert current_example_window() == (6, 8)
        assert current_example_window() == (2, 8)
    assert current_example_window() is None
    with pytest.raises(ValueError, match="global_batch_size"):
        with example_window(0, 0):
            pass
    with pytest.raises(ValueError, match="offset"):
        with example_window(8, 8):
            pass
    assert current_example_window() is None


def test_config_round_trip():
    layer = DropPath(0.25, seed=5, name="dp")
    clone = DropPath.from_config(layer.get_config())
    assert (clone.rate, clone.seed, clone.name) == (0.25, 5, "dp")
    with pytest.raises(ValueError, match="rate"):
        DropPath(1.0)
    assert keras.saving.get_registered_object("florence_keras>DropPath") is DropPath

"""DenseLabelHead: its layout is tf.nn.depth_to_space's, its maths a LayerNorm and a Dense; config round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from florence_keras.layers.dense_label_head import DenseLabelHead


def test_matches_layer_norm_dense_and_depth_to_space():
    rng = np.random.default_rng(0)
    head = DenseLabelHead((3, 4), sub_cells=2, layer_norm_epsilon=1e-5)
    x = rng.normal(size=(2, 3, 2, 6)).astype("float32")
    got = np.asarray(head(x))
    head.norm.gamma.assign(rng.normal(size=6).astype("float32"))
    head.norm.beta.assign(rng.normal(size=6).astype("float32"))
    got = np.asarray(head(x))
    normed = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    normed = normed * np.asarray(head.norm.gamma) + np.asarray(head.norm.beta)
    kernel, bias = (np.asarray(w) for w in head.logits.weights)
    expected = tf.nn.depth_to_space(normed @ kernel + bias, 2).numpy()
    assert got.shape == (2, 6, 4, 7)
    assert np.abs(got - expected).max() < 1e-5


def test_config_round_trip_and_bad_arguments():
    head = DenseLabelHead((3, 9, 9), sub_cells=4)
    clone = keras.layers.deserialize(keras.layers.serialize(head))
    assert clone.get_config() == head.get_config()
    assert head.compute_output_shape((None, 2, 2, 8)) == (None, 8, 8, 21)
    with pytest.raises(ValueError, match="class_counts"):
        DenseLabelHead((3, 1))
    with pytest.raises(ValueError, match="sub_cells"):
        DenseLabelHead((3,), sub_cells=0)

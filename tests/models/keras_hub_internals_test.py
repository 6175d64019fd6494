"""keras-hub internals are imported in one module only, and still behave as we rely on."""

import pathlib
import re

import numpy as np
import tensorflow as tf

import florence_keras
from florence_keras.models import keras_hub_internals

PACKAGE = pathlib.Path(florence_keras.__file__).parent


def test_only_one_module_imports_keras_hub_src():
    pattern = re.compile(r"^\s*(from|import)\s+keras_hub\.src\b", re.MULTILINE)
    importers = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if pattern.search(p.read_text()))
    assert importers == ["models/keras_hub_internals.py"]


def test_clip_encoder_layer_is_causal_with_the_names_our_weights_use():
    layer = keras_hub_internals.CLIPEncoderLayer(8, 2, 16, "quick_gelu", use_causal_mask=True)
    x = np.random.default_rng(0).normal(size=(1, 4, 8)).astype("float32")
    changed = x.copy()
    changed[:, 2:] += 1.0
    np.testing.assert_allclose(layer(x)[:, :2], layer(changed)[:, :2], atol=1e-6)
    assert not np.allclose(layer(x)[:, 2:], layer(changed)[:, 2:])
    for name in ("layer_norm_1", "layer_norm_2", "attention", "dense_1", "dense_2"):  # the converter sets these
        assert hasattr(layer, name), name


class _Doubler:
    @keras_hub_internals.preprocessing_function
    def __call__(self, x):
        assert isinstance(x, tf.Tensor)  # the wrapped code always sees TensorFlow tensors
        return x * 2


def test_preprocessing_function_runs_tf_code_eagerly_and_in_tf_data():
    doubler = _Doubler()
    np.testing.assert_array_equal(np.asarray(doubler(np.array([1, 2]))), [2, 4])
    dataset = tf.data.Dataset.from_tensor_slices(np.array([[1, 2]])).map(doubler)
    np.testing.assert_array_equal(next(iter(dataset)).numpy(), [2, 4])

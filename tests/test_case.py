"""The shared test harness: serialization round trips and numeric helpers."""

import os

import numpy as np
import keras


def run_serialization_test(layer, inputs, atol=0.0, **call_kwargs):
    """get_config == constructor args: rebuilding from config gives the same layer.

    Builds `layer` on `inputs`, re-creates it with `from_config(get_config())`,
    copies the weights and checks the config and the outputs are identical, then
    checks `keras.layers.serialize` / `deserialize` too.
    """
    expected = layer(inputs, **call_kwargs)
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    clone(inputs, **call_kwargs)
    assert clone.get_config() == config
    clone.set_weights(layer.get_weights())
    _assert_tree_close(clone(inputs, **call_kwargs), expected, atol)
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert revived.get_config() == config
    return clone


def _assert_tree_close(actual, expected, atol):
    if isinstance(expected, dict):
        assert set(actual) == set(expected)
        for key in expected:
            _assert_tree_close(actual[key], expected[key], atol)
        return
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(actual), keras.ops.convert_to_numpy(expected), atol=atol
    )


def random_images(batch, height, width, channels=3, seed=0):
    return np.random.default_rng(seed).random((batch, height, width, channels)).astype("float32")


def split_cpu_for_two_replicas():
    """Splits the CPU into two logical devices (MirroredStrategy's two replicas on one CPU).

    Call it at a test module's import, before TensorFlow initialises its devices; when another module initialised
    them first it does nothing, and `with_two_logical_cpus` then runs the computation in a fresh process.
    """
    import tensorflow as tf

    try:
        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    except RuntimeError:
        pass


def with_two_logical_cpus(compute, script, *args, timeout=300):
    """Numbers computed by `compute(*args)` with two logical CPU devices (MirroredStrategy's two replicas).

    A test module splits the CPU in two at import, before TensorFlow starts. When another module started
    TensorFlow first the split is no longer possible, so the computation runs in a fresh process instead:
    `script` (the test file) is executed with `args` as its command line, and its `__main__` must print
    `compute`'s numbers, space-separated, on its last line.

    Returns:
        A tuple of floats.
    """
    import subprocess
    import sys

    import tensorflow as tf

    if len(tf.config.list_logical_devices("CPU")) >= 2:
        result = compute(*args)
        return tuple(float(x) for x in (result if isinstance(result, (tuple, list)) else [result]))
    completed = subprocess.run(
        [sys.executable, script, *(str(a) for a in args)], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return tuple(float(x) for x in completed.stdout.strip().splitlines()[-1].split())

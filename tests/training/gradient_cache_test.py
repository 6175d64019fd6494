"""GradientCache: chunked gradients equal the full-batch step, with dropout and across replicas."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

try:  # two logical CPUs for MirroredStrategy, before TensorFlow initialises
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:
    pass

import keras  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from toy_dual_encoder import build_toy_dual_encoder  # noqa: E402
from toy_dual_encoder import toy_examples  # noqa: E402

from florence_keras.losses import unicl_loss  # noqa: E402
from florence_keras.training import GradientCache  # noqa: E402
from florence_keras.training import full_batch_gradients  # noqa: E402
from florence_keras.training import make_strategy  # noqa: E402
from tests.test_case import with_two_logical_cpus  # noqa: E402


def _build(dtype="float32", dropout=0.0):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype)
    try:
        keras.utils.set_random_seed(1)
        return build_toy_dual_encoder(dropout=dropout)
    finally:
        keras.config.set_dtype_policy(previous)


def _batch(n, seed=0):
    images, tokens, labels = toy_examples(n, seed=seed)
    return {"images": tf.constant(images), "token_ids": tf.constant(tokens), "labels": tf.constant(labels)}


def _max_error(a, b):
    return max(
        float(np.max(np.abs(tf.convert_to_tensor(x).numpy() - tf.convert_to_tensor(y).numpy())))
        for x, y in zip(a, b)
    )


def _scale(grads):
    return max(float(np.max(np.abs(tf.convert_to_tensor(g).numpy()))) for g in grads)


@pytest.mark.parametrize("chunk_size", [1, 4, 8])
def test_equals_full_batch_float64_model(chunk_size):
    # A float64 model isolates the algorithm from float32 summation order; the loss itself is float32.
    model = _build("float64")
    batch = _batch(16)
    loss_full, grads_full = tf.function(lambda b: full_batch_gradients(model, b))(batch)
    cache = GradientCache(model, chunk_size)
    loss_cache, grads_cache = tf.function(lambda b: cache(b))(batch)
    assert abs(float(loss_full) - float(loss_cache)) < 1e-6
    assert _max_error(grads_full, grads_cache) < 1e-5


def test_equals_full_batch_float32_model():
    model = _build("float32")
    batch = _batch(16)
    _, grads_full = tf.function(lambda b: full_batch_gradients(model, b))(batch)
    _, grads_cache = tf.function(lambda b: GradientCache(model, 4)(b))(batch)
    # float32 sums over 16 × 77 positions in another order: compare relative to the gradient scale.
    assert _max_error(grads_full, grads_cache) / _scale(grads_full) < 1e-4


def test_dropout_masks_replayed_in_second_pass():
    """With dropout, the chunked gradient equals the gradient of the same chunk-wise forward pass."""
    model = _build("float64", dropout=0.3)
    batch = _batch(12, seed=1)
    chunk = 4
    state = [tf.convert_to_tensor(v).numpy() for v in model.non_trainable_variables]

    @tf.function
    def reference(batch):
        # One tape over a chunk-by-chunk forward: the draws are those of GradientCache's pass 1.
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            us, vs = [], []
            for i in range(0, 12, chunk):
                us.append(model.embed_images(batch["images"][i:i + chunk], training=True))
                vs.append(model.embed_texts(batch["token_ids"][i:i + chunk], training=True))
            loss = unicl_loss(tf.concat(us, 0), tf.concat(vs, 0), batch["labels"], model.logit_scale())
        return loss, tape.gradient(loss, variables)

    loss_ref, grads_ref = reference(batch)
    state_after_reference = [tf.convert_to_tensor(v).numpy() for v in model.non_trainable_variables]
    for var, value in zip(model.non_trainable_variables, state):
        var.assign(value)
    loss_cache, grads_cache = tf.function(lambda b: GradientCache(model, chunk)(b))(batch)
    assert abs(float(loss_ref) - float(loss_cache)) < 1e-6
    assert _max_error(grads_ref, grads_cache) < 1e-5
    # The seed state advanced once per chunk forward, as in a single pass.
    for a, b in zip(state_after_reference, model.non_trainable_variables):
        np.testing.assert_array_equal(a, tf.convert_to_tensor(b).numpy())
    # Sanity: dropout is active (another draw changes the gradient).
    _, grads_again = tf.function(lambda b: GradientCache(model, chunk)(b))(batch)
    assert _max_error(grads_ref, grads_again) > 1e-3


def _peak_mib(function, batch):
    """Peak TensorFlow CPU-allocator memory of one call above what was resident before it."""
    out = function(batch)  # trace and warm up
    del out
    tf.config.experimental.reset_memory_stats("CPU:0")
    base = tf.config.experimental.get_memory_info("CPU:0")["current"]
    loss, _ = function(batch)
    float(loss)
    return (tf.config.experimental.get_memory_info("CPU:0")["peak"] - base) / 2**20


def _peak_memory_figures():
    """MiB of one gradient step of a tiny FlorenceCLIP (CoSwin + text tower, 32 px) above the resident state:
    (cache in chunks of 16, full batch) at batch 64, then at 256.

    Run in a fresh process (see the test): TensorFlow keeps the CPU allocator's statistics only in some process
    states ("Cannot reset memory stats for device 'CPU:0'" after other work in the same process).
    """
    from tests.model_fixtures import tiny_clip

    keras.utils.set_random_seed(0)
    task = tiny_clip()
    cache = GradientCache(task, 16)
    rng = np.random.default_rng(0)
    figures = []
    for batch_size in (64, 256):
        batch = {"images": tf.constant(rng.normal(size=(batch_size, 32, 32, 3)).astype("float32")),
                 "token_ids": tf.constant(rng.integers(1, 49000, size=(batch_size, 77)).astype("int32")),
                 "labels": tf.constant(np.arange(batch_size) % 7, tf.int64)}
        figures += [_peak_mib(tf.function(cache.__call__), batch),
                    _peak_mib(tf.function(lambda b: full_batch_gradients(task, b)), batch)]
    return figures


def test_peak_memory_grows_with_chunk_not_batch():
    # A fresh interpreter runs this file's module code (not its __main__) and prints the four figures.
    child = ("import runpy, sys; figures = runpy.run_path(sys.argv[1])['_peak_memory_figures'](); "
             "print(*figures)")
    completed = subprocess.run([sys.executable, "-c", child, __file__], capture_output=True, text=True, timeout=600,
                               env={**os.environ, "PYTHONPATH": os.getcwd(), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert completed.returncode == 0, completed.stderr[-5000:]
    cache_64, full_64, cache_256, full_256 = map(float, completed.stdout.strip().splitlines()[-1].split())
    peaks = {64: (cache_64, full_64), 256: (cache_256, full_256)}
    # Measured: cache 17.2 -> 16.2 MiB, full batch 47 -> 201 MiB (the rest is resident inputs/weights).
    assert full_256 > 3 * full_64, peaks
    assert cache_256 < 1.5 * cache_64, peaks
    assert cache_256 < full_256 / 5, peaks


def test_loss_scaling_scales_gradients():
    model = _build("float64")
    batch = _batch(8)
    _, grads = tf.function(lambda b: GradientCache(model, 4)(b))(batch)
    _, scaled = tf.function(lambda b: GradientCache(model, 4)(b, scale_loss=lambda l: l * 1024.0))(batch)
    assert _max_error([g * 1024.0 for g in grads], scaled) < 1e-6 * 1024


def test_bad_chunk_sizes():
    model = _build()
    with pytest.raises(ValueError, match="chunk_size=0"):
        GradientCache(model, 0)
    with pytest.raises(ValueError, match="batch_size=6, chunk_size=4"):
        GradientCache(model, 4)(_batch(6))
    with pytest.raises(ValueError, match="owns its loss.*without replica_loss, embed, loss_from_embeddings"):
        GradientCache(keras.layers.Dense(2), 4)


def _replica_chunk_error():
    """Max gradient error of 2 replicas × 8 in chunks of 4 against one device × 16, full batch."""
    model = _build("float64")
    batch = _batch(16, seed=2)
    _, grads_single = tf.function(lambda b: full_batch_gradients(model, b))(batch)
    weights = [tf.convert_to_tensor(v).numpy() for v in model.variables]

    strategy = make_strategy("mirrored")  # the logical CPUs
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        replica_model = _build("float64")
    for var, value in zip(replica_model.variables, weights):
        var.assign(value)
    cache = GradientCache(replica_model, 4)
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx: {k: v[ctx.replica_id_in_sync_group * 8:(ctx.replica_id_in_sync_group + 1) * 8]
                     for k, v in batch.items()}
    )

    @tf.function
    def step(batch):
        # The replica passes its context explicitly: the Task's UniCL loss gathers across it.
        _, grads = strategy.run(lambda b: cache(b, replica_context=tf.distribute.get_replica_context()),
                                args=(batch,))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in grads]

    return _max_error(grads_single, step(per_replica))


def test_two_replicas_in_chunks_equal_one_device():
    (error,) = with_two_logical_cpus(_replica_chunk_error, __file__)
    assert error < 1e-5, error


def _florence_clip_replica_errors():
    """A tiny FlorenceCLIP's UniCL loss and gradients on 2 replicas × 4 (one pass, and the gradient cache in chunks
    of 2) against one device × 8: (loss error, relative gradient error, relative gradient-cache error)."""
    from tests.model_fixtures import tiny_clip

    keras.utils.set_random_seed(0)
    clip = tiny_clip()
    rng = np.random.default_rng(0)
    texts = ["a red circle", "a blue square", "a green star"]
    batch = {"images": tf.constant(rng.normal(size=(8, 32, 32, 3)).astype("float32")),
             "token_ids": clip.preprocessor.tokenize([texts[i % 3] for i in range(8)]),
             "labels": tf.constant(np.arange(8) % 3, tf.int64)}  # positives within and across replicas
    loss_single, grads_single = tf.function(lambda b: full_batch_gradients(clip, b))(batch)
    strategy = make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        replica_clip = tiny_clip()
    for var, value in zip(replica_clip.weights, clip.weights):
        var.assign(value)
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx: {k: v[ctx.replica_id_in_sync_group * 4:(ctx.replica_id_in_sync_group + 1) * 4]
                     for k, v in batch.items()})
    scale = _scale([g for g in grads_single if g is not None])
    results = []
    for compute in (full_batch_gradients, GradientCache(replica_clip, 2).__call__):
        task_arg = (replica_clip,) if compute is full_batch_gradients else ()

        @tf.function
        def step(b, compute=compute, task_arg=task_arg):
            loss, grads = strategy.run(
                lambda x: compute(*task_arg, x, replica_context=tf.distribute.get_replica_context()), args=(b,))
            return (strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                    [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in grads])

        loss, grads = step(per_replica)
        results.append((abs(float(loss) - float(loss_single)), _max_error(
            [g for g in grads_single if g is not None], [g for g, s in zip(grads, grads_single) if s is not None])
            / scale))
    return results[0][0], results[0][1], results[1][1]


def test_florence_clip_two_replicas_equal_one_device():
    """The Task's own loss (FlorenceCLIP.replica_loss / embed + loss_from_embeddings), replica context passed
    explicitly: 2 replicas give the single-device loss and gradients, with and without the gradient cache."""
    loss_error, grad_error, cache_error = with_two_logical_cpus(
        lambda _: _florence_clip_replica_errors(), __file__, "florence")
    # Measured: loss error 0, gradient errors 3e-7 and 5e-7 of the largest gradient entry.
    assert loss_error < 1e-5, loss_error
    assert grad_error < 1e-5 and cache_error < 1e-5, (grad_error, cache_error)


if __name__ == "__main__":
    print(*(_florence_clip_replica_errors() if sys.argv[1:] == ["florence"] else [_replica_chunk_error()]))

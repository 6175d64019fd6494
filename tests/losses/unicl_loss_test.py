"""Tests of the UniCL loss against independent numpy computations and across replicas."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.test_case import split_cpu_for_two_replicas  # noqa: E402

split_cpu_for_two_replicas()  # before TensorFlow initialises (else a subprocess runs the replica tests)

import keras  # noqa: E402

from florence_keras.losses import UniCLLoss  # noqa: E402
from florence_keras.losses import unicl_anchor_losses  # noqa: E402
from florence_keras.losses import unicl_loss  # noqa: E402
from florence_keras.training import make_strategy  # noqa: E402
from tests.test_case import with_two_logical_cpus  # noqa: E402


def _normalised(rng, n, d):
    x = rng.normal(size=(n, d)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def clip_loss_numpy(u, v, s):
    """CLIP's symmetric cross-entropy: targets are the diagonal."""
    logits = s * u.astype("float64") @ v.astype("float64").T
    n = len(u)
    i2t = -_log_softmax(logits)[np.arange(n), np.arange(n)].mean()
    t2i = -_log_softmax(logits.T)[np.arange(n), np.arange(n)].mean()
    return i2t + t2i


def unicl_loss_numpy_loops(u, v, y, s):
    """SPEC §1 written out with explicit loops over anchors and positives (float64)."""
    u = u.astype("float64")
    v = v.astype("float64")
    n = len(y)
    i2t = 0.0
    for i in range(n):
        row = [s * u[i] @ v[j] for j in range(n)]
        log_z = np.log(sum(np.exp(r) for r in row))
        positives = [k for k in range(n) if y[k] == y[i]]
        i2t += -sum(row[k] - log_z for k in positives) / len(positives)
    t2i = 0.0
    for j in range(n):
        column = [s * u[i] @ v[j] for i in range(n)]
        log_z = np.log(sum(np.exp(c) for c in column))
        positives = [k for k in range(n) if y[k] == y[j]]
        t2i += -sum(column[k] - log_z for k in positives) / len(positives)
    return i2t / n + t2i / n


@pytest.mark.parametrize("n,d,s", [(1, 4, 1.0), (5, 8, 14.3), (16, 32, 100.0)])
def test_equals_clip_loss_when_labels_distinct(n, d, s):
    rng = np.random.default_rng(n)
    u, v = _normalised(rng, n, d), _normalised(rng, n, d)
    labels = rng.permutation(10**6)[:n].astype("int64")
    got = float(unicl_loss(u, v, labels, np.float32(s)))
    np.testing.assert_allclose(got, clip_loss_numpy(u, v, s), rtol=1e-5, atol=1e-5)


def test_hand_worked_shared_text():
    # Two pairs with identical embeddings and one shared label: every logit equals s, so each softmax is
    # uniform over 2 and each anchor averages log(1/2) over its 2 positives: L = log 2 + log 2.
    u = np.array([[0.6, 0.8], [0.6, 0.8]], dtype="float32")
    got = float(unicl_loss(u, u, np.array([5, 5]), np.float32(3.0)))
    np.testing.assert_allclose(got, 2 * np.log(2.0), rtol=1e-6)


def test_hand_worked_three_examples():
    # u = v = e1, e1, e2 with labels a, a, b and s = 1. For the e1 anchors the logits are [1, 1, 0]:
    # log-probabilities 1 - log(2e + 1) for k = 0, 1, so ℓ = log(2e + 1) - 1 in both directions.
    # For the e2 anchor the logits are [0, 0, 1], its only positive has log-probability 1 - log(2 + e).
    e = np.e
    a = np.log(2 * e + 1) - 1
    b = np.log(2 + e) - 1
    expected = 2 * (2 * a + b) / 3
    u = np.array([[1, 0], [1, 0], [0, 1]], dtype="float32")
    got = float(unicl_loss(u, u, np.array([1, 1, 2]), np.float32(1.0)))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_duplicate_labels_match_loop_reference(seed):
    rng = np.random.default_rng(seed)
    n, d, s = 12, 6, 7.5
    u, v = _normalised(rng, n, d), _normalised(rng, n, d)
    labels = rng.integers(0, 4, size=n).astype("int64")  # many duplicates
    got = float(unicl_loss(u, v, labels, np.float32(s)))
    np.testing.assert_allclose(got, unicl_loss_numpy_loops(u, v, labels, s), rtol=1e-5)
    # The per-anchor terms average to the loss.
    anchors, global_n = unicl_anchor_losses(u, v, labels, np.float32(s))
    assert int(global_n) == n and tuple(anchors.shape) == (n,)
    np.testing.assert_allclose(float(np.mean(anchors)), got, rtol=1e-6)


def test_large_hash_labels_are_not_merged():
    # Two distinct 63-bit keys that would be equal as float32 / float64.
    big = 2**62
    labels = np.array([big, big + 1], dtype="int64")
    rng = np.random.default_rng(3)
    u, v = _normalised(rng, 2, 4), _normalised(rng, 2, 4)
    expected = clip_loss_numpy(u, v, 2.0)
    np.testing.assert_allclose(float(unicl_loss(u, v, labels, np.float32(2.0))), expected, rtol=1e-5)
    outputs = {"image_embeddings": u, "text_embeddings": v, "logit_scale": np.float32(2.0)}
    np.testing.assert_allclose(float(UniCLLoss()(labels, outputs)), expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_compute_in_float32(dtype):
    rng = np.random.default_rng(4)
    u, v = _normalised(rng, 6, 8), _normalised(rng, 6, 8)
    labels = np.array([0, 1, 1, 2, 3, 3])
    loss = unicl_loss(tf.cast(u, dtype), tf.cast(v, dtype), labels, tf.constant(10.0, dtype))
    assert loss.dtype == tf.float32
    # Only the input rounding differs from the float32 result.
    u16 = tf.cast(tf.cast(u, dtype), "float32").numpy()
    v16 = tf.cast(tf.cast(v, dtype), "float32").numpy()
    np.testing.assert_allclose(float(loss), unicl_loss_numpy_loops(u16, v16, labels, 10.0), rtol=1e-5)


def test_inside_tf_function_matches_eager():
    rng = np.random.default_rng(5)
    u, v = _normalised(rng, 8, 4), _normalised(rng, 8, 4)
    labels = np.array([3, 3, 1, 2, 2, 2, 0, 9])
    fn = tf.function(unicl_loss)
    np.testing.assert_allclose(
        float(fn(u, v, labels, tf.constant(5.0))), float(unicl_loss(u, v, labels, np.float32(5.0))), rtol=1e-6
    )


def test_wrapper_matches_function_and_reductions():
    rng = np.random.default_rng(6)
    u, v = _normalised(rng, 5, 4), _normalised(rng, 5, 4)
    labels = np.array([1, 1, 2, 3, 1])
    outputs = {"image_embeddings": u, "text_embeddings": v, "logit_scale": np.float32(4.0)}
    expected = unicl_loss_numpy_loops(u, v, labels, 4.0)
    np.testing.assert_allclose(float(UniCLLoss()(labels, outputs)), expected, rtol=1e-5)
    per_anchor = UniCLLoss(reduction=None)(labels, outputs)
    assert tuple(per_anchor.shape) == (5,)
    np.testing.assert_allclose(float(UniCLLoss(reduction="sum")(labels, outputs)), 5 * expected, rtol=1e-5)
    weights = np.array([1.0, 0.0, 1.0, 1.0, 1.0], dtype="float32")
    weighted = UniCLLoss(reduction="mean_with_sample_weight")(labels, outputs, sample_weight=weights)
    np.testing.assert_allclose(
        float(weighted), float(np.sum(per_anchor * weights) / 4.0), rtol=1e-6
    )


def test_wrapper_serialization_round_trip():
    loss = UniCLLoss(cross_replica=True, name="my_unicl", reduction="sum")
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, UniCLLoss)
    assert restored.get_config() == loss.get_config()


def test_bad_inputs_raise_clear_errors():
    u = np.eye(3, dtype="float32")
    with pytest.raises(ValueError, match="labels.dtype"):
        unicl_loss(u, u, np.array([0.0, 1.0, 2.0]), np.float32(1.0))
    with pytest.raises(ValueError, match="image_embeddings.shape"):
        unicl_loss(u[0], u, np.array([0, 1, 2]), np.float32(1.0))
    with pytest.raises(ValueError, match="same shape"):
        unicl_loss(u, u[:2], np.array([0, 1, 2]), np.float32(1.0))
    with pytest.raises(ValueError, match="labels.shape"):
        unicl_loss(u, u, np.array([0, 1]), np.float32(1.0))
    with pytest.raises(ValueError, match="logit_scale.shape"):
        unicl_loss(u, u, np.array([0, 1, 2]), np.ones(3, "float32"))
    with pytest.raises(ValueError, match="y_pred"):
        UniCLLoss()(np.array([0, 1, 2]), {"image_embeddings": u})
    with pytest.raises(ValueError, match="reduction"):
        UniCLLoss(reduction="avg")


# ---------------------------------------------------------------------------------------------------
# Replica equivalence: 2 replicas × b against one device × 2b.


def _replica_equivalence_errors(block_size=None, mode="context"):
    """Returns (loss error, max gradient error, loss) of 2 replicas × b against 1 device × 2b.

    The replicas compute the loss `block_size` anchors at a time when it is set (0 or None: dense); the
    single device always uses the dense path. `mode` says how the replicas ask for the gather:
    "context" passes `replica_context=` to `unicl_loss`, "loss_object" calls `UniCLLoss(cross_replica=True)`
    (summing the replicas' values, Keras's convention), "none" asks for no gather at all.
    """
    rng = np.random.default_rng(7)
    b, f, d = 6, 10, 8
    features_i = rng.normal(size=(2 * b, f)).astype("float32")
    features_t = rng.normal(size=(2 * b, f)).astype("float32")
    # Duplicates within a replica (label 4 at 0, 1) and split across replicas (7 at 2 and 8; 9 at 5, 6, 11).
    labels = np.array([4, 4, 7, 1, 2, 9, 9, 3, 7, 5, 6, 9], dtype="int64")
    w_i0 = rng.normal(size=(f, d)).astype("float32")
    w_t0 = rng.normal(size=(f, d)).astype("float32")
    log_scale0 = np.float32(np.log(1 / 0.07))

    def loss_fn(w_i, w_t, log_scale, xi, xt, y, block=None, replica_mode=None):
        u = tf.math.l2_normalize(tf.matmul(xi, w_i), axis=1)
        v = tf.math.l2_normalize(tf.matmul(xt, w_t), axis=1)
        if replica_mode == "loss_object":
            outputs = {"image_embeddings": u, "text_embeddings": v, "logit_scale": tf.exp(log_scale)}
            return UniCLLoss(cross_replica=True)(y, outputs)
        context = tf.distribute.get_replica_context() if replica_mode == "context" else None
        return unicl_loss(u, v, y, tf.exp(log_scale), block_size=block, replica_context=context)

    # One device, global batch 2b.
    w_i, w_t, log_scale = tf.Variable(w_i0), tf.Variable(w_t0), tf.Variable(log_scale0)
    with tf.GradientTape() as tape:
        loss_single = loss_fn(w_i, w_t, log_scale, features_i, features_t, labels)
    grads_single = tape.gradient(loss_single, [w_i, w_t, log_scale])

    strategy = make_strategy("mirrored")  # the logical CPUs
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        mw_i, mw_t, mlog = tf.Variable(w_i0), tf.Variable(w_t0), tf.Variable(log_scale0)

    def shard(value_context):
        r = value_context.replica_id_in_sync_group
        return (
            features_i[r * b:(r + 1) * b],
            features_t[r * b:(r + 1) * b],
            labels[r * b:(r + 1) * b],
        )

    xi, xt, y = (
        strategy.experimental_distribute_values_from_function(lambda c, k=k: shard(c)[k])
        for k in range(3)
    )

    @tf.function
    def step(xi, xt, y):
        def replica_fn(xi, xt, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(mw_i, mw_t, mlog, xi, xt, y, block=block_size or None, replica_mode=mode)
            return loss, tape.gradient(loss, [mw_i, mw_t, mlog])

        losses, grads = strategy.run(replica_fn, args=(xi, xt, y))
        total = strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
        return total, [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in grads]

    loss_multi, grads_multi = step(xi, xt, y)
    loss_error = abs(float(loss_multi) - float(loss_single))
    grad_error = max(
        float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in zip(grads_single, grads_multi)
    )
    return loss_error, grad_error, float(loss_single)


@pytest.mark.parametrize("block_size,mode", [(None, "context"), (4, "context"), (None, "loss_object")])
def test_two_replicas_equal_one_device_with_double_batch(block_size, mode):
    loss_error, grad_error, _ = with_two_logical_cpus(
        _replica_equivalence_errors, __file__, block_size or 0, mode)
    assert loss_error < 1e-5, loss_error
    assert grad_error < 1e-5, grad_error


def test_no_gather_unless_asked():
    # Without `replica_context` each replica sees only its own negatives: the loss is another number.
    # (It used to gather whenever it found a replica context; the gather is now an explicit argument.)
    loss_error, grad_error, loss = with_two_logical_cpus(_replica_equivalence_errors, __file__, 0, "none")
    assert loss_error > 1e-2 * loss, (loss_error, loss)
    assert grad_error > 1e-3, grad_error


def test_bad_replica_context_and_cross_replica_arguments():
    u = np.eye(3, dtype="float32")
    with pytest.raises(ValueError, match="replica_context"):
        unicl_loss(u, u, np.array([0, 1, 2]), np.float32(1.0), replica_context="mirrored")
    with pytest.raises(ValueError, match="cross_replica"):
        UniCLLoss(cross_replica="yes")
    outputs = {"image_embeddings": u, "text_embeddings": u, "logit_scale": np.float32(1.0)}
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():  # the cross-replica context: no replica to gather from
        with pytest.raises(ValueError, match="strategy.run"):
            UniCLLoss(cross_replica=True)(np.array([0, 1, 2]), outputs)


if __name__ == "__main__":
    print(*_replica_equivalence_errors(int(sys.argv[1]) if len(sys.argv) > 1 else 0,
                                       sys.argv[2] if len(sys.argv) > 2 else "context"))

"""dense_label_loss against NumPy and a hand-worked case; two replicas' shares add up to one device's loss."""

import tensorflow as tf

try:  # two logical CPUs for MirroredStrategy, before TensorFlow initialises
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:
    pass

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from florence_keras.losses.dense_label_loss import dense_label_loss  # noqa: E402
from florence_keras.losses.dense_label_loss import pool_fractions  # noqa: E402
from tests.test_case import with_two_logical_cpus  # noqa: E402

COUNTS = (3, 4)


def _fractions(rng, batch, size):
    """Random one-hot maps of each kind, as fractions."""
    kinds = [np.eye(c)[rng.integers(0, c, (batch, size, size))] for c in COUNTS]
    return np.concatenate(kinds, -1).astype("float32")


def _numpy_loss(logits, fractions, background_weight):
    b, h, w, k = logits.shape
    s = fractions.shape[1] // h
    targets = fractions.reshape(b, h, s, w, s, k).mean((2, 4)).astype(np.float64)
    weights = 1 - background_weight * targets[..., 0]
    total, start = 0.0, 0
    for c in COUNTS:
        z = logits[..., start:start + c].astype(np.float64)
        log_p = z - z.max(-1, keepdims=True)
        log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
        total += (-(targets[..., start:start + c] * log_p).sum(-1) * weights).sum() / weights.sum()
        start += c
    return total


def test_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 4, 7)).astype("float32") * 3
    fractions = _fractions(rng, 3, 16)
    got = float(dense_label_loss(logits, fractions, COUNTS, background_weight=0.9))
    assert abs(got - _numpy_loss(logits, fractions, 0.9)) < 1e-5


def test_hand_worked_cases():
    # Uniform logits: each kind costs log(classes), whatever the targets and weights.
    fractions = _fractions(np.random.default_rng(1), 2, 8)
    got = float(dense_label_loss(np.zeros((2, 2, 2, 7), "float32"), fractions, COUNTS))
    assert abs(got - (np.log(3) + np.log(4))) < 1e-6
    # One block, half background and half class 2 of the first kind; the second kind all class 1.
    fractions = np.zeros((1, 2, 2, 7), "float32")
    fractions[0, 0, :, 0] = 1
    fractions[0, 1, :, 2] = 1
    fractions[..., 3 + 1] = 1
    logits = np.zeros((1, 1, 1, 7), "float32")
    logits[..., 3 + 1] = 100.0  # the second kind predicted surely and rightly: no cost
    expected = -(0.5 * np.log(1 / 3) + 0.5 * np.log(1 / 3))  # the first kind uniform: log 3
    assert abs(float(dense_label_loss(logits, fractions, COUNTS)) - expected) < 1e-5
    np.testing.assert_allclose(np.asarray(pool_fractions(fractions, 1, 1))[0, 0, 0, :3], [0.5, 0, 0.5])


def test_background_blocks_weigh_less():
    # Two blocks: a wrong prediction on an object block costs more than on a background block.
    fractions = np.zeros((1, 1, 2, 7), "float32")
    fractions[0, 0, 0, 0] = 1  # background
    fractions[0, 0, 1, 1] = 1  # an object
    fractions[..., 3] = 1
    logits = np.zeros((1, 1, 2, 7), "float32")
    wrong_on_object = logits.copy()
    wrong_on_object[0, 0, 1, 2] = 5.0
    wrong_on_background = logits.copy()
    wrong_on_background[0, 0, 0, 2] = 5.0
    assert float(dense_label_loss(wrong_on_object, fractions, COUNTS)) > \
        float(dense_label_loss(wrong_on_background, fractions, COUNTS)) + 0.5


def test_bad_inputs():
    with pytest.raises(ValueError, match="divide"):
        dense_label_loss(np.zeros((1, 3, 3, 7), "float32"), np.zeros((1, 8, 8, 7), "float32"), COUNTS)
    with pytest.raises(ValueError, match="channels"):
        dense_label_loss(np.zeros((1, 2, 2, 6), "float32"), np.zeros((1, 8, 8, 7), "float32"), COUNTS)
    with pytest.raises(ValueError, match="background_weight"):
        dense_label_loss(np.zeros((1, 2, 2, 7), "float32"), np.zeros((1, 8, 8, 7), "float32"), COUNTS, 1.0)


def _replica_sum_error():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(4, 2, 2, 7)).astype("float32")
    fractions = _fractions(rng, 4, 8)
    fractions[:2, ..., :3] = np.eye(3)[0]  # the first replica's examples all background: the normalisers differ
    whole = float(dense_label_loss(logits, fractions, COUNTS))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    values = tf.data.Dataset.from_tensor_slices((logits, fractions)).batch(4)
    batch = next(iter(strategy.experimental_distribute_dataset(values)))

    def step(replica_logits, replica_fractions):
        return dense_label_loss(replica_logits, replica_fractions, COUNTS,
                                replica_context=tf.distribute.get_replica_context())

    shares = strategy.experimental_local_results(strategy.run(step, args=batch))
    return abs(sum(float(s) for s in shares) - whole), abs(float(shares[0]) - float(shares[1]))


def test_two_replicas_add_up_to_one_device():
    error, difference = with_two_logical_cpus(_replica_sum_error, __file__)
    assert error < 1e-5 and difference > 0.1, (error, difference)


if __name__ == "__main__":
    print(*_replica_sum_error())

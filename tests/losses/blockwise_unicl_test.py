"""The blockwise UniCL loss equals the dense one — values and gradients — for any block size."""

import numpy as np
import pytest
import tensorflow as tf

from florence_keras.losses import unicl_anchor_losses
from florence_keras.losses import unicl_loss
from florence_keras.losses.blockwise_unicl import blockwise_unicl_anchor_losses


def _normalised(rng, n, d):
    x = rng.normal(size=(n, d)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _numpy_loss_and_grads(u, v, y, s):
    """UniCL and its gradient w.r.t. u, v, s in float64 numpy, from the closed form."""
    u, v = u.astype("float64"), v.astype("float64")
    n = len(y)
    m = (y[:, None] == y[None, :]).astype("float64")
    count = m.sum(1, keepdims=True)
    loss, du, dv, ds = 0.0, np.zeros_like(u), np.zeros_like(v), 0.0
    for anchors, columns, d_anchor, d_column in ((u, v, du, dv), (v, u, dv, du)):
        products = anchors @ columns.T
        logits = s * products
        lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        loss += np.sum(lse - (m * logits).sum(1) / count[:, 0]) / n
        g = (np.exp(logits - lse[:, None]) - m / count) / n
        d_anchor += s * g @ columns
        d_column += s * g.T @ anchors
        ds += np.sum(g * products)
    return loss, du, dv, ds


@pytest.mark.parametrize("n,block", [(12, 5), (12, 12), (12, 1), (5, 64)])
def test_matches_numpy_closed_form_and_dense_autodiff(n, block):
    rng = np.random.default_rng(n + block)
    u0, v0 = _normalised(rng, n, 6), _normalised(rng, n, 6)
    labels = rng.integers(0, 4, size=n).astype("int64")  # many shared labels
    results = {}
    for name, block_size in (("dense", None), ("blockwise", block)):
        u, v, s = tf.Variable(u0), tf.Variable(v0), tf.Variable(9.0)
        with tf.GradientTape() as tape:
            loss = unicl_loss(u, v, labels, s, block_size=block_size)
        results[name] = [loss] + tape.gradient(loss, [u, v, s])
    expected = _numpy_loss_and_grads(u0, v0, labels, 9.0)
    for got, want in zip(results["blockwise"], expected):
        np.testing.assert_allclose(np.asarray(got), want, rtol=2e-5, atol=2e-6)
    for got, want in zip(results["blockwise"], results["dense"]):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-5, atol=2e-6)


def test_per_anchor_terms_and_weighted_upstream_gradient():
    # A non-uniform upstream gradient (weights per anchor) exercises the per-row weighting.
    rng = np.random.default_rng(3)
    n = 9
    u0, v0 = _normalised(rng, n, 4), _normalised(rng, n, 4)
    labels = np.array([1, 1, 2, 3, 3, 3, 4, 5, 5], dtype="int64")
    weights = tf.constant(rng.uniform(0.1, 2.0, n).astype("float32"))
    outputs = []
    for block_size in (None, 2):
        u, v = tf.Variable(u0), tf.Variable(v0)
        with tf.GradientTape() as tape:
            anchors, total = unicl_anchor_losses(u, v, labels, 5.0, block_size=block_size)
            objective = tf.reduce_sum(anchors * weights)
        outputs.append([anchors, objective] + tape.gradient(objective, [u, v]))
        assert int(total) == n
    for a, b in zip(*outputs):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)


def test_inside_tf_function_with_unknown_batch():
    rng = np.random.default_rng(4)
    u0, v0 = _normalised(rng, 10, 8), _normalised(rng, 10, 8)
    labels = np.arange(10, dtype="int64")

    @tf.function(input_signature=[tf.TensorSpec([None, 8]), tf.TensorSpec([None, 8]),
                                  tf.TensorSpec([None], tf.int64)])
    def blockwise(u, v, y):
        with tf.GradientTape() as tape:
            tape.watch([u, v])
            loss = unicl_loss(u, v, y, 20.0, block_size=3)
        return loss, tape.gradient(loss, [u, v])

    loss, grads = blockwise(u0, v0, labels)
    expected = _numpy_loss_and_grads(u0, v0, labels, 20.0)
    np.testing.assert_allclose(float(loss), expected[0], rtol=1e-5)
    np.testing.assert_allclose(grads[0].numpy(), expected[1], atol=2e-6)
    np.testing.assert_allclose(grads[1].numpy(), expected[2], atol=2e-6)


def test_bad_block_size_is_a_clear_error():
    u = np.eye(2, dtype="float32")
    for bad in (0, -1, 2.5, "4"):
        with pytest.raises(ValueError, match="block_size"):
            blockwise_unicl_anchor_losses(u, u, u, u, [0, 1], [0, 1], 1.0, bad)

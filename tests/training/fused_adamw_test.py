"""FusedAdamW takes the same steps as Keras's AdamW: alone, with a schedule and exclusions, across replicas."""


import numpy as np
import tensorflow as tf

from tests.test_case import split_cpu_for_two_replicas  # noqa: E402

split_cpu_for_two_replicas()  # before TensorFlow initialises (else a subprocess runs the replica tests)

import keras  # noqa: E402

from florence_keras.training import make_strategy  # noqa: E402
from florence_keras.training.fused_adamw import FusedAdamW  # noqa: E402
from florence_keras.training.warmup_cosine_decay import WarmupCosineDecay  # noqa: E402
from tests.test_case import with_two_logical_cpus  # noqa: E402

SHAPES = [(7, 5), (5,), (3, 4, 2), ()]


def _variables(seed=0):
    rng = np.random.default_rng(seed)
    return [keras.Variable(rng.normal(size=s).astype("float32"), name=f"w{i}")
            for i, s in enumerate(SHAPES)]


def _gradients(step, seed=1):
    rng = np.random.default_rng(seed + step)
    return [rng.normal(size=s).astype("float32") * 10.0 ** rng.integers(-3, 2) for s in SHAPES]


def _numpy_adamw(weights, steps, lr_at, wd, beta_1, beta_2, eps, decayed):
    """AdamW written out in float64 numpy (Keras's formulation: decay, then the Adam step)."""
    weights = [w.astype("float64") for w in weights]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    for t in range(1, steps + 1):
        lr = lr_at(t - 1)
        alpha = lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        for i, g in enumerate(_gradients(t - 1)):
            if decayed[i]:
                weights[i] = weights[i] - weights[i] * wd * lr
            m[i] += (g - m[i]) * (1 - beta_1)
            v[i] += (g * g - v[i]) * (1 - beta_2)
            weights[i] = weights[i] - alpha * m[i] / (np.sqrt(v[i]) + eps)
    return weights


def _run(optimizer_class, steps=6, **kwargs):
    variables = _variables()
    optimizer = optimizer_class(**kwargs)
    optimizer.build(variables)
    optimizer.exclude_from_weight_decay(var_list=[variables[1]])

    @tf.function
    def step(grads):
        optimizer.apply(grads, variables)

    for t in range(steps):
        step([tf.constant(g) for g in _gradients(t)])
    return [v.numpy() for v in variables], optimizer


def test_same_steps_as_keras_adamw_and_numpy():
    schedule = WarmupCosineDecay(1e-2, total_steps=6, warmup_steps=2)
    kwargs = dict(learning_rate=schedule, weight_decay=0.1, beta_1=0.9, beta_2=0.98, epsilon=1e-6)
    fused, optimizer = _run(FusedAdamW, **kwargs)
    plain, _ = _run(keras.optimizers.AdamW, **kwargs)
    expected = _numpy_adamw([v.numpy() for v in _variables()], 6,
                            lambda t: float(schedule(t)), 0.1, 0.9, 0.98, 1e-6,
                            decayed=[True, False, True, True])
    for a, b, c in zip(fused, plain, expected):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
    # The steps really moved the weights, and the excluded one was not decayed.
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(fused, [v.numpy() for v in _variables()])) > 1e-3
    assert int(optimizer.iterations) == 6


def test_same_variables_config_and_checkpoint_layout_as_adamw():
    variables = _variables()
    fused, plain = FusedAdamW(learning_rate=1e-3), keras.optimizers.AdamW(learning_rate=1e-3)
    fused.build(variables)
    plain.build(variables)
    # Same slots in the same order (checkpoints track optimizer variables by order; see
    # TrainingCheckpoint); only the optimizer's own name prefix differs.
    def suffixes(optimizer):
        return [(v.path.split("/", 1)[1], tuple(v.shape)) for v in optimizer.variables]

    assert suffixes(fused) == suffixes(plain)
    config = fused.get_config()
    assert {k: v for k, v in config.items() if k != "name"} == {
        k: v for k, v in plain.get_config().items() if k != "name"}
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(fused))
    assert isinstance(restored, FusedAdamW)


def test_the_fused_kernel_is_what_runs():
    variables = _variables()
    optimizer = FusedAdamW(learning_rate=1e-3)
    optimizer.build(variables)
    grads = [tf.constant(g) for g in _gradients(0)]
    graph = tf.function(lambda: optimizer.apply(grads, variables)).get_concrete_function().graph
    op_types = [op.type for op in graph.get_operations()]
    assert op_types.count("ResourceApplyAdam") == len(SHAPES)
    assert "Sqrt" not in op_types


def test_amsgrad_and_sparse_gradients_fall_back_to_keras():
    fused, _ = _run(FusedAdamW, learning_rate=1e-2, amsgrad=True, weight_decay=0.0)
    plain, _ = _run(keras.optimizers.AdamW, learning_rate=1e-2, amsgrad=True, weight_decay=0.0)
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    table = keras.Variable(np.ones((4, 3), "float32"))
    optimizer = FusedAdamW(learning_rate=0.1, weight_decay=0.0)
    optimizer.build([table])
    sparse = tf.IndexedSlices(tf.ones((1, 3)), tf.constant([2]), tf.constant([4, 3]))
    optimizer.apply([sparse], [table])
    changed = np.any(table.numpy() != 1.0, axis=1)
    assert changed.tolist() == [False, False, True, False]


def _replica_error():
    """Max |difference| of 2 mirrored replicas' FusedAdamW steps from one device's Keras AdamW."""
    plain, _ = _run(keras.optimizers.AdamW, learning_rate=1e-2, weight_decay=0.1)
    strategy = make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        variables = _variables()
        optimizer = FusedAdamW(learning_rate=1e-2, weight_decay=0.1)
        optimizer.build(variables)
        optimizer.exclude_from_weight_decay(var_list=[variables[1]])

    @tf.function
    def step(grads):
        def replica_fn(grads):
            # Replica r holds g/2 ± d: only their sum, the optimizer's all-reduce, is g. (Halves alone
            # would not do: Adam's step barely depends on the gradient's scale.)
            sign = 1.0 - 2.0 * tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32)
            optimizer.apply([g / 2.0 + sign * tf.reverse(g, [0]) if g.shape.rank else g / 2.0 + sign
                             for g in grads], variables)
        strategy.run(replica_fn, args=(grads,))

    for t in range(6):
        step([tf.constant(g, tf.float32) for g in _gradients(t)])
    replicas = [[v.numpy() for v in variable.value.values] for variable in variables]
    return max(float(np.max(np.abs(r - p))) for copies, p in zip(replicas, plain) for r in copies)


def test_two_replicas_equal_one_device():
    (error,) = with_two_logical_cpus(_replica_error, __file__)
    # A replica that skipped the all-reduce would step along g/2 ± d, ~lr = 1e-2 off; rounding is ~1e-7.
    assert error < 5e-6, error


if __name__ == "__main__":
    print(_replica_error())

"""AdamW factory and the warm-up + cosine schedule, against numpy."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from florence_keras.training import WarmupCosineDecay
from florence_keras.training import AdamWConfig
from florence_keras.training import FINETUNE_ADAMW
from florence_keras.training import make_optimizer
from florence_keras.training import no_weight_decay_variables


def _numpy_schedule(step, peak, total, warmup, end):
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / (total - warmup))
    return end + 0.5 * (peak - end) * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize("warmup,end", [(0, 0.0), (10, 0.0), (25, 1e-5)])
def test_schedule_matches_numpy(warmup, end):
    schedule = WarmupCosineDecay(3e-4, total_steps=100, warmup_steps=warmup, end_learning_rate=end)
    steps = np.arange(0, 130)
    got = np.array([float(schedule(s)) for s in steps])
    expected = np.array([_numpy_schedule(s, 3e-4, 100, warmup, end) for s in steps])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-10)
    if warmup:
        assert got[warmup - 1] == pytest.approx(3e-4) and got[0] == pytest.approx(3e-4 / warmup)
    assert got[-1] == pytest.approx(end, abs=1e-12)
    # Inside tf.function with a tensor step.
    np.testing.assert_allclose(float(tf.function(schedule)(tf.constant(40, tf.int64))), expected[40], rtol=1e-5)


def test_schedule_serialises():
    schedule = WarmupCosineDecay(1e-3, total_steps=50, warmup_steps=5, end_learning_rate=1e-6)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, WarmupCosineDecay)
    assert restored.get_config() == schedule.get_config()
    optimizer = keras.optimizers.AdamW(learning_rate=schedule)
    restored_optimizer = keras.optimizers.AdamW.from_config(optimizer.get_config())
    assert restored_optimizer.get_config()["learning_rate"] == optimizer.get_config()["learning_rate"]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(peak_learning_rate=0, total_steps=10), "peak_learning_rate=0"),
        (dict(peak_learning_rate=1e-3, total_steps=0), "total_steps=0"),
        (dict(peak_learning_rate=1e-3, total_steps=10, warmup_steps=10), "warmup_steps=10"),
        (dict(peak_learning_rate=1e-3, total_steps=10, end_learning_rate=1.0), "end_learning_rate=1.0"),
    ],
)
def test_schedule_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WarmupCosineDecay(**kwargs)


def _toy_model():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(6, name="dense")(inputs)
    x = keras.layers.LayerNormalization(name="norm")(x)
    x = keras.layers.Dense(3, name="head")(x)
    model = keras.Model(inputs, x)
    model.log_logit_scale = model.add_weight(shape=(), initializer="ones", name="log_logit_scale")
    return model


def test_no_decay_on_norms_biases_and_logit_scale():
    model = _toy_model()
    excluded = {v.path for v in no_weight_decay_variables(model.trainable_variables)}
    decayed = {v.path for v in model.trainable_variables} - excluded
    assert decayed == {"dense/kernel", "head/kernel"}
    extra = {v.path for v in no_weight_decay_variables(model.trainable_variables, ["head"])}
    assert "head/kernel" in extra


def test_adamw_decays_only_matrices():
    """With zero gradients Adam's step is 0, so only decoupled weight decay moves the variables."""
    model = _toy_model()
    before = {v.path: np.array(v) for v in model.trainable_variables}
    optimizer = make_optimizer(
        model.trainable_variables, AdamWConfig(learning_rate=0.1, weight_decay=0.5), total_steps=10
    )
    optimizer.apply_gradients([(tf.zeros_like(v), v) for v in model.trainable_variables])
    lr = float(WarmupCosineDecay(0.1, 10)(0))
    for v in model.trainable_variables:
        if v.path.endswith("kernel"):
            np.testing.assert_allclose(np.array(v), before[v.path] * (1 - lr * 0.5), rtol=1e-6)
        else:
            np.testing.assert_array_equal(np.array(v), before[v.path])


def test_mixed_float16_gets_loss_scaling():
    model = _toy_model()
    optimizer = make_optimizer(
        model.trainable_variables, AdamWConfig(learning_rate=1e-3), total_steps=10, precision="mixed_float16"
    )
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(optimizer.inner_optimizer, keras.optimizers.AdamW)
    with pytest.raises(ValueError, match="precision='fp16'"):
        make_optimizer(model.trainable_variables, total_steps=10, precision="fp16")
    with pytest.raises(ValueError, match="AdamWConfig"):
        make_optimizer(model.trainable_variables, {"learning_rate": 1e-3}, total_steps=10)


def test_one_set_of_defaults_and_fine_tuning_override():
    """Pretraining's AdamW (CLIP / open_clip) is the default everywhere; fine-tuning's is one named set."""
    model = _toy_model()
    optimizer = make_optimizer(model.trainable_variables, total_steps=10)
    assert float(optimizer.learning_rate) == pytest.approx(5e-4)  # the schedule's first step, no warm-up
    assert (float(optimizer.weight_decay), optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (
        pytest.approx(0.1), 0.9, 0.98, 1e-6)
    assert (FINETUNE_ADAMW.weight_decay, FINETUNE_ADAMW.beta_2, FINETUNE_ADAMW.epsilon) == (0.05, 0.999, 1e-8)
    assert AdamWConfig().replace(weight_decay=None, beta_2=0.95) == AdamWConfig(beta_2=0.95)


@pytest.mark.parametrize(
    "kwargs,match",
    [(dict(learning_rate=0.0), "learning_rate=0.0"), (dict(weight_decay=-1.0), "weight_decay=-1.0"),
     (dict(beta_2=1.0), "beta_2=1.0"), (dict(epsilon=0), "epsilon=0"), (dict(warmup_steps=1.5), "warmup_steps"),
     (dict(end_learning_rate=1.0), "end_learning_rate=1.0"), (dict(no_decay_names="bias"), "no_decay_names")],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdamWConfig(**kwargs)


def test_compile_default_optimizer_uses_the_same_config():
    """A Task's default `compile()` optimizer: the config's constants at a constant rate, same exclusions."""
    model = _toy_model()
    optimizer = AdamWConfig().constant_rate_optimizer(model.trainable_variables)
    optimizer.build(model.trainable_variables)
    decayed = {v.path for v in model.trainable_variables if optimizer._use_weight_decay(v)}
    assert decayed == {"dense/kernel", "head/kernel"}
    assert float(optimizer.learning_rate) == pytest.approx(5e-4) and optimizer.beta_2 == 0.98


def test_a_warmup_as_long_as_the_run_is_shortened_not_refused():
    import keras as _keras

    from florence_keras.training.optimizer_factory import AdamWConfig as _Config
    from florence_keras.training.optimizer_factory import make_optimizer as _make

    variable = _keras.Variable([[1.0]])
    optimizer = _make([variable], _Config(learning_rate=1e-3, warmup_steps=100), total_steps=30)
    schedule = optimizer.learning_rate if callable(optimizer.learning_rate) else optimizer._learning_rate
    assert schedule.warmup_steps == 3  # 10% of the 30-step run

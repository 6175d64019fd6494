"""UniCLTrainer in-process tests: replica equivalence, precisions, SIGTERM, NaN, stages, TensorBoard."""

import glob
import os
import pathlib
import signal
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
from toy_dual_encoder import make_toy_dataset  # noqa: E402

from florence_keras.training import AdamWConfig  # noqa: E402
from florence_keras.training import NonFiniteLossError  # noqa: E402
from florence_keras.training import TrainingStage  # noqa: E402
from florence_keras.training import UniCLTrainer  # noqa: E402
from florence_keras.training import florence_stages  # noqa: E402
from tests.test_case import with_two_logical_cpus  # noqa: E402


def _trainer(model_dir, **overrides):
    kwargs = dict(
        model_dir=str(model_dir),
        total_steps=3,
        global_batch_size=8,
        optimizer=AdamWConfig(learning_rate=1e-3, warmup_steps=1),
        image_size=16,
        checkpoint_every=100,
        log_every=1,
        seed=3,
        verbose=0,
    )
    kwargs.update(overrides)
    dropout = kwargs.pop("dropout", 0.0)
    make_dataset = kwargs.pop("make_dataset", make_toy_dataset())
    return UniCLTrainer(lambda: build_toy_dual_encoder(dropout=dropout), make_dataset, **kwargs)


def _weights(model):
    return [tf.convert_to_tensor(v).numpy() for v in model.trainable_variables]


def _mirrored_equivalence_error(tmp_path):
    """Max weight difference after 3 steps: default strategy vs mirrored (2 replicas), chunks + remat."""
    single = _trainer(tmp_path / "single")
    single.fit()
    mirrored = _trainer(
        tmp_path / "mirrored", strategy="mirrored", chunk_size=2, activation_checkpointing=True, clip_norm=100.0
    )
    assert mirrored.strategy.num_replicas_in_sync == 2
    assert mirrored.checkpointed_layers == ["image_block", "text_block"]
    mirrored.fit()
    return max(float(np.max(np.abs(a - b))) for a, b in zip(_weights(single.model), _weights(mirrored.model)))


def test_mirrored_chunked_run_matches_single_device(tmp_path):
    (error,) = with_two_logical_cpus(_mirrored_equivalence_error, __file__, tmp_path)
    # Adam's first steps move every weight by ~lr whatever the gradient's size, so differences of
    # float rounding in near-zero gradient entries are amplified; 1e-3 × lr bounds them.
    assert error < 1e-6, error


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_runs_with_float32_loss(tmp_path, precision):
    trainer = _trainer(tmp_path, precision=precision, total_steps=2, clip_norm=1.0)
    assert trainer.model.patch.compute_dtype == precision.split("_")[1]
    assert trainer.model.patch.variable_dtype == "float32"
    result = trainer.fit()
    assert np.isfinite(result["loss"]) and result["step"] == 2
    if precision == "mixed_float16":
        assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    # The global policy is restored after the model is built.
    assert keras.config.dtype_policy().name == "float32"


def test_sigterm_saves_and_stops(tmp_path):
    previous_handler = signal.getsignal(signal.SIGTERM)
    trainer = _trainer(tmp_path, total_steps=6, checkpoint_every=100)
    original_step = trainer._train_step
    calls = []

    def step_then_signal(iterator, flag):
        calls.append(int(flag))
        out = original_step(iterator, flag)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGTERM)  # arrives between steps, as a preemption would
        return out

    trainer._train_step = step_then_signal
    result = trainer.fit()
    # The flag is seen by step 4 (it is all-reduced there), which completes, then the run saves and stops.
    assert calls == [0, 0, 0, 1]
    assert result["preempted"] and result["step"] == 4
    assert result["checkpoint"].endswith("ckpt-4")
    assert signal.getsignal(signal.SIGTERM) == previous_handler
    # Resuming continues from step 4 to the end.
    resumed = _trainer(tmp_path, total_steps=6, checkpoint_every=100)
    assert resumed.fit()["step"] == 6


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(tmp_path):
    good = make_toy_dataset()

    def poisoned(request):
        dataset = good(request)

        def poison(index, batch):
            step = index // (request.global_batch_size // request.batch_size // request.num_input_pipelines)
            nan_images = tf.fill(tf.shape(batch["images"]), float("nan"))
            # The 5th step (1-based) sees NaN images.
            batch["images"] = tf.where(step == 4, nan_images, batch["images"])
            return batch

        return dataset.enumerate().map(poison)

    trainer = _trainer(tmp_path, total_steps=8, checkpoint_every=2, make_dataset=poisoned)
    with pytest.raises(NonFiniteLossError, match="at step 5") as info:
        trainer.fit()
    assert info.value.last_checkpoint.endswith("ckpt-4")
    saved = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "checkpoints" / "ckpt-*.index")))
    assert saved == ["ckpt-2.index", "ckpt-4.index"]
    reader = tf.train.load_checkpoint(info.value.last_checkpoint)
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if name.startswith("model_variables") and np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.all(np.isfinite(value)), name


def test_stages_switch_data_and_tensorboard_scalars(tmp_path):
    requests = []
    toy = make_toy_dataset()

    def recording(request):
        requests.append(request)
        return toy(request)

    stages = florence_stages(
        6, image_size=16, augmented_texts_off_step=2, high_resolution_step=4, high_resolution_image_size=24
    )
    trainer = _trainer(tmp_path, total_steps=6, stages=stages, make_dataset=recording)
    trainer.fit()
    assert [(r.stage.start_step, r.stage.image_size, r.stage.prompt_augmented_texts) for r in requests] == [
        (0, 16, True), (2, 16, False), (4, 24, False)
    ]
    assert {r.batch_size for r in requests} == {8} and {r.seed for r in requests} == {3}
    tags = {}
    for path in glob.glob(str(tmp_path / "tensorboard" / "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    assert set(tags) >= {"loss", "learning_rate", "logit_scale", "samples_per_second"}
    assert tags["loss"] == [1, 2, 3, 4, 5, 6]


def test_weight_decay_skips_norms_biases_and_logit_scale(tmp_path):
    trainer = _trainer(tmp_path)
    optimizer = trainer.optimizer
    decayed = {v.path for v in trainer.model.trainable_variables if optimizer._use_weight_decay(v)}
    assert any(p.endswith("patch/kernel") for p in decayed)
    assert not any(p.endswith(("bias", "gamma", "beta", "log_logit_scale")) for p in decayed)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="strategy='tpu'"):
        _trainer(tmp_path, strategy="tpu")
    with pytest.raises(ValueError, match="precision='fp8'"):
        _trainer(tmp_path, precision="fp8")
    with pytest.raises(ValueError, match="chunk_size=3"):
        _trainer(tmp_path, chunk_size=3)
    with pytest.raises(ValueError, match="start steps"):
        _trainer(tmp_path, stages=[TrainingStage("late", 5, 16, False)])
    with pytest.raises(ValueError, match="AdamWConfig"):
        _trainer(tmp_path, optimizer={"learning_rate": 1e-3})
    with pytest.raises(ValueError, match="owns its loss.*without replica_loss"):
        UniCLTrainer(lambda: keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]), make_toy_dataset(),
                     model_dir=str(tmp_path / "dense"), total_steps=1, global_batch_size=8)
    with pytest.raises(ValueError, match="optimizer_fn"):
        _trainer(tmp_path, optimizer_fn="adamw")

    def wrong_size(request):
        return make_toy_dataset()(request).map(
            lambda b: {**b, "images": tf.image.resize(b["images"], (12, 12))}
        )

    with pytest.raises(ValueError, match="16x16"):
        _trainer(tmp_path / "size", make_dataset=wrong_size).fit()

    def finite(request):
        return make_toy_dataset()(request).take(2)

    with pytest.raises(ValueError, match="repeated"):
        _trainer(tmp_path / "short", make_dataset=finite, total_steps=3).fit()


if __name__ == "__main__":
    print(_mirrored_equivalence_error(pathlib.Path(sys.argv[1])))

"""TrainingCheckpoint under damage: corrupt or missing files fall back to the previous checkpoint with a warning;
a full disk during a save (a real small tmpfs when this process may mount one, else injected ENOSPC) leaves the
previous checkpoint usable; the trainer goes on after a failed periodic save and fails loudly on the final one.
"""

import errno
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import uuid

import keras
import numpy as np
import pytest
import tensorflow as tf

from florence_keras.training import AdamWConfig  # noqa: E402
from florence_keras.training import UniCLTrainer  # noqa: E402
from florence_keras.training import training_checkpoint as tc  # noqa: E402
from florence_keras.training.training_checkpoint import CheckpointSaveError  # noqa: E402
from florence_keras.training.training_checkpoint import NoUsableCheckpointError  # noqa: E402
from florence_keras.training.training_checkpoint import TrainingCheckpoint  # noqa: E402
from tests.model_fixtures import tiny_clip  # noqa: E402

LOGGER = "florence_keras.training.training_checkpoint"


def _model_and_checkpoint(directory, units=64):
    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(units), keras.layers.Dense(4)])
    optimizer = keras.optimizers.AdamW(1e-3)
    optimizer.build(model.trainable_variables)
    strategy = tf.distribute.get_strategy()
    return model, TrainingCheckpoint(str(directory), model, optimizer, strategy)


def _set_weights(model, value):
    for variable in model.variables:
        variable.assign(tf.fill(variable.shape, tf.cast(value, variable.dtype)))


def _first_weight(model):
    return float(tf.reshape(model.variables[0], [-1])[0])


def _saved_steps_2_and_4(directory):
    model, checkpoint = _model_and_checkpoint(directory)
    for step in (2, 4):
        _set_weights(model, step)
        checkpoint.save(step)
    return model, checkpoint


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _zero(path):
    open(path, "wb").close()


def _flip(path):
    data = bytearray(pathlib.Path(path).read_bytes())
    for i in range(0, len(data), 97):
        data[i] ^= 0xFF
    pathlib.Path(path).write_bytes(bytes(data))


DAMAGE = {
    "truncated_data": ("data", _truncate),
    "zeroed_data": ("data", _zero),
    "deleted_data": ("data", os.remove),
    "flipped_data": ("data", _flip),
    "truncated_index": ("index", _truncate),
    "zeroed_index": ("index", _zero),
    "deleted_index": ("index", os.remove),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_latest_checkpoint_falls_back_with_a_warning(tmp_path, caplog, damage):
    _saved_steps_2_and_4(tmp_path)
    which, hurt = DAMAGE[damage]
    target = tmp_path / ("ckpt-4.index" if which == "index" else "ckpt-4.data-00000-of-00001")
    hurt(str(target))

    model, checkpoint = _model_and_checkpoint(tmp_path)
    _set_weights(model, -1)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        step = checkpoint.restore_latest()
    assert step == 2
    assert _first_weight(model) == 2.0
    assert checkpoint.restored_path == str(tmp_path / "ckpt-2")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(tmp_path / "ckpt-4") in m and "falling back" in m for m in warnings), warnings


@pytest.mark.parametrize("state", ["deleted", "garbled"])
def test_lost_state_file_does_not_restart_from_scratch(tmp_path, state):
    _saved_steps_2_and_4(tmp_path)
    if state == "deleted":
        os.remove(tmp_path / "checkpoint")
    else:
        (tmp_path / "checkpoint").write_text("model_checkpoint_path: {{{ garbage")
    model, checkpoint = _model_and_checkpoint(tmp_path)
    assert checkpoint.restore_latest() == 4
    assert _first_weight(model) == 4.0


def test_complete_checkpoint_missing_from_state_file_is_used(tmp_path):
    """A kill between writing ckpt-N and updating the state file: ckpt-N is complete and is restored."""
    _saved_steps_2_and_4(tmp_path)
    state = (tmp_path / "checkpoint").read_text()
    model, checkpoint = _model_and_checkpoint(tmp_path)
    _set_weights(model, 6)
    checkpoint.save(6)
    (tmp_path / "checkpoint").write_text(state)  # as if killed before the state update
    model, checkpoint = _model_and_checkpoint(tmp_path)
    assert checkpoint.restore_latest() == 6
    assert _first_weight(model) == 6.0


def test_every_checkpoint_damaged_raises(tmp_path):
    _saved_steps_2_and_4(tmp_path)
    for step in (2, 4):
        _zero(tmp_path / f"ckpt-{step}.data-00000-of-00001")
    _, checkpoint = _model_and_checkpoint(tmp_path)
    with pytest.raises(NoUsableCheckpointError, match="ckpt-4.*ckpt-2"):
        checkpoint.restore_latest()


def test_leftover_partial_write_is_removed(tmp_path):
    _saved_steps_2_and_4(tmp_path)
    leftover = tmp_path / "ckpt-6_temp"
    leftover.mkdir()
    (leftover / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 100)
    model, checkpoint = _model_and_checkpoint(tmp_path)
    assert not leftover.exists()
    assert checkpoint.restore_latest() == 4


def _mount_tmpfs(path, size):
    """Mounts a tmpfs of `size` at `path`; returns False when this process may not mount."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    return done.returncode == 0


def _checkpoint_files(directory):
    return sorted(name for name in os.listdir(directory) if name != "filler")


def test_full_disk_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    mount_point = tmp_path / f"tmpfs_{uuid.uuid4().hex[:6]}"
    mounted = _mount_tmpfs(mount_point, "8m")
    directory = mount_point if mounted else tmp_path / "injected"
    try:
        model, checkpoint = _model_and_checkpoint(directory, units=2048)  # ~1.2 MB per checkpoint
        _set_weights(model, 2)
        checkpoint.save(2)
        before = _checkpoint_files(directory)
        if mounted:
            # Fill the disk, leaving far less than a checkpoint's size.
            stat = os.statvfs(directory)
            with open(directory / "filler", "wb") as f:
                f.write(b"\0" * max(stat.f_bavail * stat.f_frsize - 64 * 1024, 0))
        else:  # no mount permission: inject ENOSPC into the write (docs/reliability_training.md)
            def no_space(*args, **kwargs):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(checkpoint._checkpoint, "write", no_space)
        _set_weights(model, 4)
        with pytest.raises(CheckpointSaveError, match="step 4"):
            checkpoint.save(4)
        assert _checkpoint_files(directory) == before  # no partial ckpt-4 files, no temp directory
        if mounted:
            os.remove(directory / "filler")
        monkeypatch.undo()
        fresh_model, fresh = _model_and_checkpoint(directory, units=2048)
        assert fresh.restore_latest() == 2
        assert _first_weight(fresh_model) == 2.0
        # With space again, saving works and is restorable.
        _set_weights(model, 4)
        checkpoint.save(4)
        fresh_model, fresh = _model_and_checkpoint(directory, units=2048)
        assert fresh.restore_latest() == 4
        assert _first_weight(fresh_model) == 4.0
    finally:
        if mounted:
            subprocess.run(["umount", str(mount_point)], check=False)
    print(f"full-disk test used {'a real tmpfs' if mounted else 'injected ENOSPC'}")


def _in_memory_dataset(request):
    """16 random examples (5 labels) for a tiny FlorenceCLIP, batched per replica and repeated."""
    rng = np.random.default_rng(0)
    examples = {
        "images": rng.normal(size=(16, 32, 32, 3)).astype("float32"),
        "token_ids": rng.integers(1, 1000, size=(16, 77)).astype("int32"),
        "labels": (np.arange(16) % 5).astype("int64"),
    }
    return tf.data.Dataset.from_tensor_slices(examples).repeat().batch(request.batch_size, drop_remainder=True)


def _tiny_trainer(model_dir, **overrides):
    kwargs = dict(model_dir=str(model_dir), total_steps=4, global_batch_size=8,
                  optimizer=AdamWConfig(learning_rate=1e-3, warmup_steps=1), image_size=32, checkpoint_every=1,
                  log_every=1, seed=3, verbose=0)
    kwargs.update(overrides)
    return UniCLTrainer(tiny_clip, _in_memory_dataset, **kwargs)


def test_trainer_goes_on_after_a_failed_periodic_save_and_fails_on_the_final_one(tmp_path, monkeypatch, caplog):
    trainer = _tiny_trainer(tmp_path)
    real_save = trainer.checkpoint._manager.save
    failing_steps = {2, 4}

    def flaky_save(checkpoint_number=None, **kwargs):
        if checkpoint_number in failing_steps:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(checkpoint_number=checkpoint_number, **kwargs)

    monkeypatch.setattr(trainer.checkpoint._manager, "save", flaky_save)
    with caplog.at_level(logging.ERROR), pytest.raises(CheckpointSaveError, match="step 4"):
        trainer.fit()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("step 2" in m and "Training goes on" in m for m in errors), errors
    assert any("step 4" in m and "Stopping" in m for m in errors), errors
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.index")) == ["ckpt-1.index", "ckpt-3.index"]
    monkeypatch.undo()
    assert _tiny_trainer(tmp_path).fit()["step"] == 4  # resumes from step 3


def test_trainer_stops_after_max_failed_saves_in_a_row(tmp_path, monkeypatch):
    trainer = _tiny_trainer(tmp_path, total_steps=5, max_failed_saves=2)

    def no_space(checkpoint_number=None, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(trainer.checkpoint._manager, "save", no_space)
    with pytest.raises(CheckpointSaveError, match="step 2"):
        trainer.fit()


def test_testing_delay_hook_delays_the_state_update(tmp_path, monkeypatch):
    monkeypatch.setenv(tc.TEST_SAVE_DELAY_ENV, "0.01")
    model, checkpoint = _model_and_checkpoint(tmp_path)
    _set_weights(model, 3)
    assert checkpoint.save(3) == str(tmp_path / "ckpt-3")
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-3")
    np.testing.assert_equal(_first_weight(model), 3.0)

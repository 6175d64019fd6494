"""The trainer's data position: checkpointed with the step, handed back as `DatasetRequest.start_position`, checked.

A tiny FlorenceCLIP (tests/model_fixtures.py) on the real CSV input pipeline; the guarantees on florence_mini are in
resume_test.py and florence_mini_guarantees_test.py.
"""

import dataclasses
import pathlib
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from florence_mini_run import make_input_fn  # noqa: E402
from florence_mini_run import write_data  # noqa: E402

from florence_keras.training import AdamWConfig  # noqa: E402
from florence_keras.training import TrainingCheckpoint  # noqa: E402
from florence_keras.training import UniCLTrainer  # noqa: E402
from tests.model_fixtures import tiny_clip  # noqa: E402

BATCH = 4


def _trainer(model_dir, make_dataset, total_steps):
    return UniCLTrainer(tiny_clip, make_dataset, model_dir=str(model_dir), total_steps=total_steps,
                        global_batch_size=BATCH, optimizer=AdamWConfig(learning_rate=1e-3), image_size=32,
                        checkpoint_every=1, log_every=1, seed=0, verbose=0)


def _recording(make_dataset, requests, transform=None):
    def recorded(request):
        requests.append(request.start_position)
        dataset = make_dataset(request if transform is None else transform(request))
        return dataset
    return recorded


def _stop_after(trainer, steps):
    """Runs `trainer.fit()` and interrupts it (as a crash would) before step `steps + 1`."""
    train_step, calls = trainer._train_step, []

    def counting(*args):
        if len(calls) == steps:
            raise KeyboardInterrupt
        calls.append(1)
        return train_step(*args)

    trainer._train_step = counting
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()


@pytest.fixture(scope="module")
def input_fn(tmp_path_factory):
    return make_input_fn(write_data(tmp_path_factory.mktemp("data"), num_records=10))


def test_position_is_checkpointed_resumed_from_and_checked(tmp_path, input_fn):
    requests = []
    assert _trainer(tmp_path, _recording(input_fn, requests), total_steps=3).fit()["step"] == 3
    # Stage 1 from step 0; 3 steps x 4 examples of one input pipeline; 10 records per epoch, so position 12 is
    # record 2 of epoch 1 (the positions are epoch * 2**40 + index).
    position = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "ckpt-3")).get_tensor(
        "data_position/.ATTRIBUTES/VARIABLE_VALUE")
    assert position.tolist() == [0, 2**40 + 2]
    assert requests == [0]

    resumed = _trainer(tmp_path, _recording(input_fn, requests), total_steps=4)
    assert resumed.fit()["step"] == 4
    assert requests == [0, 2**40 + 2]
    assert resumed.checkpoint.restored_data_position.tolist() == [0, 2**40 + 2]

    # A make_dataset that starts elsewhere than asked is caught on the first step.
    ignoring = _recording(input_fn, [], transform=lambda request: dataclasses.replace(request, start_position=0))
    with pytest.raises(ValueError, match=r"ignored DatasetRequest.start_position: asked to start at \[1099511627782\]"):
        _trainer(tmp_path, ignoring, total_steps=5).fit()


def test_a_dataset_without_positions_is_skipped_to_the_step(tmp_path, input_fn):
    """Without `positions` the trainer falls back to skipping the consumed batches (and stores no position)."""
    def unpositioned(request):
        return input_fn(request).map(lambda batch: {k: v for k, v in batch.items() if k != "positions"})

    requests = []
    _stop_after(_trainer(tmp_path, _recording(unpositioned, requests), total_steps=3), steps=2)
    resumed = _trainer(tmp_path, _recording(unpositioned, requests), total_steps=3)
    resumed.fit()
    assert resumed.checkpoint.restored_data_position is None
    assert requests == [0, 0]
    # The skip delivered the third batch of the stream: the weights of one uninterrupted run (up to float rounding
    # between two traces; another batch would be ~1e-3 off).
    straight = _trainer(tmp_path / "straight", unpositioned, total_steps=3)
    straight.fit()
    for a, b in zip(resumed.model.variables, straight.model.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6)


def _small_checkpoint(directory):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.AdamW(1e-3)
    optimizer.build(model.trainable_variables)
    return model, optimizer, TrainingCheckpoint(str(directory), model, optimizer, tf.distribute.get_strategy())


def test_checkpoint_stores_the_data_position_of_any_length(tmp_path):
    _, _, checkpoint = _small_checkpoint(tmp_path)
    checkpoint.save(2, data_position=[0, 5, 7])
    _, _, fresh = _small_checkpoint(tmp_path)
    assert fresh.restore_latest() == 2
    assert fresh.restored_data_position.tolist() == [0, 5, 7]
    checkpoint.save(3, data_position=[4, 9])  # another number of input pipelines: still restores
    checkpoint.save(4)  # none
    for step, expected in ((4, None), (3, [4, 9])):
        _, _, fresh = _small_checkpoint(tmp_path)
        (tmp_path / f"ckpt-{step + 1}.index").unlink(missing_ok=True)
        assert fresh.restore_latest() == step
        got = fresh.restored_data_position
        assert (got if got is None else got.tolist()) == expected


def test_checkpoint_without_a_data_position_restores(tmp_path):
    """A checkpoint written before the data position existed (model, optimizer, step only) restores strictly."""
    model, optimizer, _ = _small_checkpoint(tmp_path / "unused")
    model.layers[0].kernel.assign(np.full((3, 2), 0.5, "float32"))
    step = tf.Variable(6, dtype=tf.int64)
    old_format = tf.train.Checkpoint(model_variables=list(model.variables),
                                     optimizer_variables=list(optimizer.variables), step=step)
    tf.train.CheckpointManager(old_format, str(tmp_path / "old"), max_to_keep=3).save(checkpoint_number=6)
    fresh_model, _, fresh = _small_checkpoint(tmp_path / "old")
    assert fresh.restore_latest() == 6
    assert fresh.restored_data_position is None
    np.testing.assert_array_equal(fresh_model.layers[0].kernel.numpy(), np.full((3, 2), 0.5, "float32"))

"""The trainer's data position: checkpointed with the step, handed back as `DatasetRequest.start_position`, checked.

A tiny FlorenceCLIP (tests/model_fixtures.py) on the real CSV input pipeline; the guarantees on florence_mini are in
resume_test.py and florence_mini_guarantees_test.py.
"""

import dataclasses
import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from florence_mini_run import make_input_fn  # noqa: E402
from florence_mini_run import write_data  # noqa: E402

from florence_keras.training import AdamWConfig  # noqa: E402
from florence_keras.training import UniCLTrainer  # noqa: E402
from tests.model_fixtures import tiny_clip  # noqa: E402

BATCH = 4


def _trainer(model_dir, make_dataset, total_steps):
    return UniCLTrainer(tiny_clip, make_dataset, model_dir=str(model_dir), total_steps=total_steps,
                        global_batch_size=BATCH, optimizer=AdamWConfig(learning_rate=1e-3), image_size=32,
                        checkpoint_every=1, log_every=1, deterministic=True, seed=0, verbose=0)


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
    # The skip delivered the third batch of the stream: the same weights as one uninterrupted run.
    straight = _trainer(tmp_path / "straight", unpositioned, total_steps=3)
    straight.fit()
    for a, b in zip(resumed.model.variables, straight.model.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

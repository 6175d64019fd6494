"""Each step reads one source by a weighted schedule; a preempted and resumed run trains on exactly the same batches."""

import signal

import numpy as np
import pytest
import tensorflow as tf

from florence_keras.data.attribute_captions import write_attribute_captions
from florence_keras.data.builtin_dataset import write_builtin_dataset
from florence_keras.training.dataset_request import DatasetRequest
from florence_keras.training.source_mixture import make_source_mixture_input_fn
from florence_keras.training.source_mixture import weighted_schedule
from florence_keras.training.training_stage import TrainingStage
from tests.training import florence_mini_run


def test_weighted_schedule_counts_and_spreads_each_source():
    assert weighted_schedule([1]) == [0]
    assert weighted_schedule([2, 1, 1]) == [0, 1, 2, 0]
    assert weighted_schedule([0, 3]) == [1, 1, 1]
    schedule = weighted_schedule([2, 3, 1, 1, 1])
    assert [schedule.count(i) for i in range(5)] == [2, 3, 1, 1, 1]
    # No source waits longer than its share allows: the heaviest one never comes twice in a row here.
    assert all(a != b for a, b in zip(schedule, schedule[1:])), schedule
    for bad in ([], [0, 0], [1, -1]):
        with pytest.raises(ValueError, match="weights"):
            weighted_schedule(bad)


def _constant_source(value):
    """A source whose per-replica batches are filled with `value`, with the positions a positioned stream has."""

    def make_dataset(request):
        assert request.start_position == 0  # the mixture always builds its sources from their start
        batches = tf.data.Dataset.range(1_000_000).batch(request.batch_size)
        return batches.map(lambda positions: {"values": tf.fill([request.batch_size], value),
                                              "positions": positions})

    return make_dataset


@pytest.mark.parametrize("replicas", [1, 2])
def test_every_replica_of_a_step_reads_that_steps_source(replicas):
    make_dataset = make_source_mixture_input_fn([_constant_source(v) for v in (10, 20, 30)], [2, 1, 1])
    request = DatasetRequest(TrainingStage("stage1", 0, 32, True), batch_size=2, global_batch_size=2 * replicas,
                             num_input_pipelines=1, input_pipeline_id=0, start_position=7)
    batches = list(make_dataset(request).take(8 * replicas).as_numpy_iterator())
    assert all(set(batch) == {"values"} for batch in batches)  # the sources' positions are dropped
    per_step = [[int(batch["values"][0]) for batch in batches[i * replicas:(i + 1) * replicas]] for i in range(8)]
    assert per_step == [[v] * replicas for v in (10, 20, 30, 10, 10, 20, 30, 10)]


def test_mismatched_weights_are_refused():
    with pytest.raises(ValueError, match="One weight per source"):
        make_source_mixture_input_fn([_constant_source(1)], [1, 1])


def test_preempted_and_resumed_mixture_run_ends_with_the_uninterrupted_weights(tmp_path):
    paths = write_builtin_dataset(str(tmp_path / "data"), num_train=24, num_heldout=0, image_size=32, seed=0,
                                  formats=("csv", "attributes"))
    colour = write_attribute_captions(paths["attributes"]["train"], ["colour"])["colour"]
    sources = [florence_mini_run.make_input_fn([paths["csv"]["train"]]), florence_mini_run.make_input_fn([colour])]

    def trainer(model_dir):
        return florence_mini_run.make_trainer(model_dir, make_source_mixture_input_fn(sources, [1, 2]),
                                              total_steps=4, checkpoint_every=100, deterministic=True, seed=5)

    straight = trainer(tmp_path / "straight")
    assert straight.fit()["step"] == 4
    expected = florence_mini_run.weights(straight.model)

    previous_handler = signal.getsignal(signal.SIGTERM)
    interrupted = trainer(tmp_path / "resumed")
    original_step = interrupted._train_step
    calls = []

    def step_then_signal(iterator, flag):
        calls.append(int(flag))
        out = original_step(iterator, flag)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGTERM)
        return out

    interrupted._train_step = step_then_signal
    first = interrupted.fit()
    assert first["preempted"] and first["step"] == 2
    assert signal.getsignal(signal.SIGTERM) == previous_handler
    resumed = trainer(tmp_path / "resumed")
    assert resumed.fit()["step"] == 4
    diff = florence_mini_run.max_abs_diff(expected, florence_mini_run.weights(resumed.model))
    assert diff == 0.0, diff

"""Positioned streams (`start_position`): a stream started at position p is the tail of the whole stream, every
epoch reads each record once, and a resume reads none of the records consumed before it (training's resume)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from florence_keras.data.builtin_dataset import write_builtin_dataset
from florence_keras.data.image_records import EPOCH_STRIDE
from florence_keras.data.image_records import load_image_records
from florence_keras.data.image_records import split_position
from florence_keras.data.image_text_dataset import load_image_text_dataset
from florence_keras.data.skip_counter import SkipCounter
from florence_keras.models import preset_registry
from florence_keras.training import DatasetRequest
from florence_keras.training import TrainingStage
from florence_keras.training.image_text_input import make_image_text_input_fn

NUM_RECORDS = 10


@pytest.fixture(scope="module")
def builtin(tmp_path_factory):
    return write_builtin_dataset(str(tmp_path_factory.mktemp("builtin")), num_train=NUM_RECORDS, num_heldout=0,
                                 formats=("csv", "tfrecord", "wds"), image_size=32)


def _elements(dataset, count):
    return list(dataset.take(count).as_numpy_iterator())


@pytest.fixture(params=[None, 0], ids=["no_global_seed", "global_seed_0"])
def global_seed(request):
    """Streams must not depend on tf.random's global seed (a process-wide setting other code may have made)."""
    tf.random.set_seed(request.param)
    yield request.param
    tf.random.set_seed(None)


@pytest.mark.parametrize("data_format, pipelines", [("csv", 1), ("tfrecord", 2), ("wds", 1)])
def test_resumed_stream_is_the_tail_of_the_whole_stream(builtin, data_format, pipelines, global_seed):
    context = tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=pipelines - 1)

    def stream(start):
        return load_image_text_dataset(builtin[data_format]["train"], data_format, image_size=16, seed=3,
                                       input_context=context, start_position=start, skip_counter=SkipCounter(),
                                       keep_sources=True)

    per_epoch = NUM_RECORDS // pipelines
    whole = _elements(stream(0), 3 * per_epoch)
    positions = [split_position(e["positions"]) for e in whole]
    # Epoch after epoch, each record of this pipeline's share once per epoch, in a new order.
    assert positions == [(epoch, index) for epoch in range(3) for index in range(per_epoch)]
    epochs = [[e["sources"] for e in whole[i * per_epoch:(i + 1) * per_epoch]] for i in range(3)]
    assert len(set(epochs[0])) == per_epoch
    assert sorted(epochs[0]) == sorted(epochs[1]) == sorted(epochs[2])
    assert epochs[0] != epochs[1]  # a new order each epoch
    for cut in (per_epoch - 2, per_epoch, 2 * per_epoch + 1):  # inside an epoch, at its end, in a later epoch
        tail = _elements(stream(int(whole[cut]["positions"])), len(whole) - cut)
        assert len(tail) == len(whole) - cut
        for expected, got in zip(whole[cut:], tail):
            assert expected["positions"] == got["positions"]
            np.testing.assert_array_equal(expected["images"], got["images"])  # crops and flips from the position
            for key in ("sources", "texts", "labels"):
                assert expected[key] == got[key]


def test_start_after_the_last_record_of_an_epoch_continues_with_the_next(builtin):
    records = load_image_records(builtin["csv"]["train"], "csv", training=True, seed=0, start_position=NUM_RECORDS)
    assert [split_position(e["positions"]) for e in _elements(records, 2)] == [(1, 0), (1, 1)]
    records = load_image_records(builtin["csv"]["train"], "csv", training=True, seed=0,
                                 start_position=2 * EPOCH_STRIDE + 4)
    assert split_position(_elements(records, 1)[0]["positions"]) == (2, 4)


def test_index_order_is_the_documented_permutation(builtin):
    rows = [line.split(",")[0] for line in open(builtin["csv"]["train"], encoding="utf-8").read().splitlines()[1:]]
    records = load_image_records(builtin["csv"]["train"], "csv", training=True, seed=5, start_position=EPOCH_STRIDE)
    got = [os.path.basename(e["sources"].decode()) for e in _elements(records, NUM_RECORDS)]
    order = tf.random.experimental.index_shuffle(tf.range(NUM_RECORDS, dtype=tf.int64), tf.constant([5, 1], tf.int64),
                                                 tf.constant(NUM_RECORDS - 1, tf.int64)).numpy()
    assert got == [os.path.basename(rows[i]) for i in order]


def test_a_stream_of_unreadable_records_ends(tmp_path):
    index = tmp_path / "index.csv"
    index.write_text("filepath,caption\n" + "".join(f"missing{i}.png,a red circle\n" for i in range(3)))
    counter = SkipCounter()
    stream = load_image_records(str(index), "csv", training=True, seed=0, start_position=1, skip_counter=counter,
                                log_skips_each_epoch=False)
    assert list(stream) == []  # ends like `.repeat()` over an empty epoch, instead of spinning forever
    assert counter.count == 2 + 3  # the rest of epoch 0, then the whole of epoch 1


def test_bad_arguments(builtin):
    path = builtin["csv"]["train"]
    with pytest.raises(ValueError, match="start_position=-1"):
        load_image_records(path, "csv", training=True, seed=0, start_position=-1)
    with pytest.raises(ValueError, match="training=False, seed=0"):
        load_image_records(path, "csv", training=False, seed=0, start_position=0)
    with pytest.raises(ValueError, match="training=True, seed=None"):
        load_image_records(path, "csv", training=True, start_position=0)
    with pytest.raises(ValueError, match="start_position=-3"):
        DatasetRequest(TrainingStage("s", 0, 32, False), 4, 4, 1, 0, start_position=-3)


def _resume_reads(tmp_path, num_records, steps, batch_size, seed=0):
    """Builds the trainer's input (`make_image_text_input_fn`) over an index of `num_records` rows and asks for the
    stream after `steps` steps; the rows that those steps consumed name missing files, so every read of one is
    counted by the skip counter. Returns (reads of consumed records, the first batch's positions)."""
    start = steps * batch_size
    consumed = set(tf.random.experimental.index_shuffle(
        tf.range(start, dtype=tf.int64), tf.constant([seed, 0], tf.int64), tf.constant(num_records - 1, tf.int64),
    ).numpy().tolist())
    tf.io.write_file(str(tmp_path / "image.png"), tf.io.encode_png(tf.fill([8, 8, 3], tf.constant(90, tf.uint8))))
    with open(tmp_path / "index.csv", "w", encoding="utf-8") as f:
        f.write("filepath,caption\n")
        f.writelines(f"{'consumed/' + str(i) if i in consumed else 'image'}.png,caption {i}\n"
                     for i in range(num_records))
    counter = SkipCounter()
    make_dataset = make_image_text_input_fn(str(tmp_path / "index.csv"), "csv",
                                            preset_registry.build_architecture_preprocessor("florence_mini", 32),
                                            skip_counter=counter)
    request = DatasetRequest(TrainingStage("stage1", 0, 32, False), batch_size, batch_size, 1, 0, seed=seed,
                             deterministic=True, start_position=start)
    batch = next(iter(make_dataset(request)))
    return counter.count, batch["positions"].numpy().tolist()


def test_resume_reads_no_consumed_record(tmp_path):
    reads, positions = _resume_reads(tmp_path, num_records=20_000, steps=2_500, batch_size=4)
    assert reads == 0
    assert positions == [10_000, 10_001, 10_002, 10_003]


@pytest.mark.slow
def test_resume_at_step_10000_of_a_million_records_reads_no_consumed_record(tmp_path):
    # The 40,000 records consumed by 10,000 steps of 4 are never read (the earlier `Dataset.skip` read them all).
    reads, positions = _resume_reads(tmp_path, num_records=1_000_000, steps=10_000, batch_size=4)
    assert reads == 0
    assert positions == [40_000, 40_001, 40_002, 40_003]

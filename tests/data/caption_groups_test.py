"""caption_groups + keyed_shuffle.grouped_order + the hard-negative option of load_image_records: groups of examples
that share a caption word, a permutation that is a pure function of the key, and an exact resume."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from florence_keras.data import keyed_shuffle
from florence_keras.data.builtin_dataset import write_builtin_dataset
from florence_keras.data.caption_groups import caption_word_ids
from florence_keras.data.caption_groups import caption_words
from florence_keras.data.image_records import load_image_records
from florence_keras.data.skip_counter import SkipCounter


def _rows(values, splits):
    return [list(values[s:e]) for s, e in zip(splits[:-1], splits[1:])]


def test_caption_words_are_distinct_lower_case_letter_runs():
    assert caption_words("Two objects: a RED circle, a red ring (3rd)") == [
        "two", "objects", "a", "red", "circle", "ring", "rd"]


def test_grouping_words_leave_out_rare_and_common_words():
    texts = ["a red circle", "a red square", "a blue circle", "a photo of a dog"]
    values, splits, vocabulary = caption_word_ids(texts, min_count=2, max_fraction=0.5)
    # "a" is in every caption (> 50%), "blue", "square", "photo", "of", "dog" in one (< 2).
    assert vocabulary == ["circle", "red"]
    assert [[vocabulary[i] for i in row] for row in _rows(values, splits)] == [["red", "circle"], ["red"],
                                                                                 ["circle"], []]
    with pytest.raises(ValueError, match="min_count"):
        caption_word_ids(texts, min_count=0)
    with pytest.raises(ValueError, match="max_fraction"):
        caption_word_ids(texts, max_fraction=0.0)


def _one_word_each(words, per_word):
    """Example i has the single word i // per_word."""
    count = words * per_word
    return np.repeat(np.arange(words), per_word).astype(np.int64), np.arange(count + 1, dtype=np.int64)


def test_grouped_order_is_a_permutation_whose_groups_share_a_word():
    values, splits = _one_word_each(words=4, per_word=32)
    order = keyed_shuffle.grouped_order(values, splits, [7, 0], fraction=1.0, group_size=16).numpy()
    assert sorted(order) == list(range(128))
    words = values[order].reshape(8, 16)
    assert all(len(set(group)) == 1 for group in words)  # 32 per word = two whole groups each
    assert sorted(collections.Counter(words[:, 0]).values()) == [2, 2, 2, 2]
    again = keyed_shuffle.grouped_order(values, splits, tf.constant([7, 0], tf.int64), 1.0, 16).numpy()
    np.testing.assert_array_equal(order, again)  # a pure function of the key
    other_epoch = keyed_shuffle.grouped_order(values, splits, [7, 1], 1.0, 16).numpy()
    assert not np.array_equal(order, other_epoch)


def test_fraction_zero_is_a_shuffle_and_a_fraction_mixes_groups_with_random_examples():
    values, splits = _one_word_each(words=8, per_word=64)
    plain = keyed_shuffle.grouped_order(values, splits, [1, 2], fraction=0.0, group_size=16).numpy()
    assert sorted(plain) == list(range(512))
    homogeneous = lambda order: np.mean([len(set(g)) == 1 for g in values[order].reshape(-1, 16)])  # noqa: E731
    assert homogeneous(plain) < 0.05  # 16 draws from 8 words almost never agree
    half = keyed_shuffle.grouped_order(values, splits, [1, 2], fraction=0.5, group_size=16).numpy()
    assert sorted(half) == list(range(512))
    assert 0.3 < homogeneous(half) < 0.6


def test_examples_without_a_grouping_word_and_a_partial_last_group():
    # 10 examples: 6 with word 0, 4 with none; groups of 4 (two whole, one of 2 kept last).
    values = np.zeros(6, np.int64)
    splits = np.array([0, 1, 2, 3, 4, 5, 6, 6, 6, 6, 6], np.int64)
    order = keyed_shuffle.grouped_order(values, splits, [0, 0], fraction=1.0, group_size=4).numpy()
    assert sorted(order) == list(range(10))
    with pytest.raises(ValueError, match="fraction"):
        keyed_shuffle.grouped_order(values, splits, [0, 0], fraction=1.5, group_size=4)
    with pytest.raises(ValueError, match="group_size"):
        keyed_shuffle.grouped_order(values, splits, [0, 0], fraction=1.0, group_size=0)


@pytest.fixture(scope="module")
def builtin(tmp_path_factory):
    return write_builtin_dataset(str(tmp_path_factory.mktemp("builtin")), num_train=16, num_heldout=0,
                                 formats=("tfrecord",), image_size=32)


@pytest.fixture(scope="module")
def colour_shape_csv(tmp_path_factory):
    """64 rows "a <colour> <shape>" (4 × 4, each 4 times) over one small PNG."""
    directory = tmp_path_factory.mktemp("csv")
    tf.io.write_file(str(directory / "image.png"), tf.io.encode_png(tf.zeros([8, 8, 3], tf.uint8)))
    rows = [f"image.png,a {colour} {shape}" for colour in ("red", "blue", "green", "pink")
            for shape in ("circle", "square", "star", "ring") for _ in range(4)]
    (directory / "index.csv").write_text("filepath,caption\n" + "\n".join(rows) + "\n")
    return str(directory / "index.csv")


def _stream(path, data_format, start, fraction=1.0):
    return load_image_records(path, data_format, training=True, seed=3, start_position=start,
                              skip_counter=SkipCounter(), hard_negative_fraction=fraction, hard_negative_group=4)


def _groups_sharing_a_word(texts):
    return sum(bool(set.intersection(*[set(t.split()[1:]) for t in texts[i:i + 4]])) for i in range(0, 64, 4))


def test_a_grouped_stream_shares_words_within_groups_and_resumes_exactly(colour_shape_csv):
    whole = list(_stream(colour_shape_csv, "csv", 0).take(80).as_numpy_iterator())
    grouped = _groups_sharing_a_word([e["texts"].decode() for e in whole[:64]])
    plain = [e["texts"].decode() for e in _stream(colour_shape_csv, "csv", 0, fraction=0.0).take(64).as_numpy_iterator()]
    assert sorted(e["texts"].decode() for e in whole[:64]) == sorted(plain)  # the same epoch, another order
    # Each word gets ~8 of the 64 draws: ~2 whole groups of 4; the rest are random groups.
    assert grouped >= 8 > _groups_sharing_a_word(plain)
    for cut in (5, 64, 70):  # inside the first epoch, at its end, inside the second
        tail = list(_stream(colour_shape_csv, "csv", int(whole[cut]["positions"])).take(80 - cut).as_numpy_iterator())
        assert [e["positions"] for e in tail] == [e["positions"] for e in whole[cut:]]
        assert [e["texts"] for e in tail] == [e["texts"] for e in whole[cut:]]


def test_record_formats_warn_and_shuffle_as_usual(builtin, caplog):
    path = builtin["tfrecord"]["train"]
    with caplog.at_level("WARNING"):
        grouped = [e["sources"] for e in _stream(path, "tfrecord", 0).take(16).as_numpy_iterator()]
    assert "Hard-negative groups need an index format" in caplog.text
    assert grouped == [e["sources"] for e in _stream(path, "tfrecord", 0, fraction=0.0).take(16).as_numpy_iterator()]


def test_bad_arguments(colour_shape_csv):
    with pytest.raises(ValueError, match="hard_negative_fraction"):
        _stream(colour_shape_csv, "csv", 0, fraction=-0.1)

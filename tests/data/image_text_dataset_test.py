"""The image-text pipeline: the data contract, determinism by seed, augmentation, per-worker sharding."""

import numpy as np
import pytest
import tensorflow as tf

from florence_keras.data import labels
from florence_keras.data.csv_index import read_csv_index
from florence_keras.data.image_records import load_image_records
from florence_keras.data.image_text_dataset import load_image_text_dataset


def _epochs(dataset, epochs=2):
    batches = list(dataset.repeat(epochs).batch(1000))
    assert len(batches) == 1
    return {key: value.numpy() for key, value in batches[0].items()}


def test_contract_determinism_and_augmentation(builtin):
    path = builtin["csv"]["train"]
    make = lambda seed: load_image_text_dataset(path, "csv", image_size=32, seed=seed)  # noqa: E731
    dataset = make(5)
    spec = dataset.element_spec
    assert spec["images"] == tf.TensorSpec([32, 32, 3], tf.uint8)
    assert spec["texts"] == tf.TensorSpec([], tf.string) and spec["labels"] == tf.TensorSpec([], tf.int64)
    first, again, other = _epochs(dataset), _epochs(make(5)), _epochs(make(6))
    for key in ("images", "texts", "labels"):
        np.testing.assert_array_equal(first[key], again[key])  # rebuilt with the same seed: the same stream
    assert not np.array_equal(first["images"], other["images"])
    count = len(first["texts"]) // 2
    assert count == 40
    assert list(first["texts"][:count]) != list(first["texts"][count:])  # each epoch is reshuffled
    # Labels are the hash of the final (possibly flip-swapped) text, computed inside the pipeline.
    np.testing.assert_array_equal(first["labels"], labels.text_label(first["texts"]).numpy())
    with open(path, encoding="utf-8") as f:
        written = {line.rsplit(",", 1)[1].strip() for line in f.readlines()[1:]}
    def swap(text):
        return text.replace("left", "\0").replace("right", "left").replace("\0", "right")

    # Every text is a written caption, or a written caption with left/right swapped by a flip.
    for text in (t.decode() for t in first["texts"]):
        assert text in written or swap(text) in written, text
    with open(path, encoding="utf-8") as f:
        written_sided = [line.rsplit(",", 1)[1].strip() for line in f.readlines()[1:]]
    written_sided = [t for t in written_sided if " left" in t or " right" in t]
    assert len(written_sided) >= 5  # the fixture's captions name sides, so the checks below can fail
    sided = [t.decode() for t in first["texts"] if b" left" in t or b" right" in t]
    assert len(sided) == 2 * len(written_sided)  # each sided caption once per epoch, swapped or not
    swapped = [t for t in sided if t not in written]
    assert 0 < len(swapped) < len(sided)  # random flips: some captions had their sides swapped, some not


def test_evaluation_transform_is_a_center_crop_in_file_order(builtin):
    records = list(load_image_records(builtin["csv"]["heldout"], "csv"))
    examples = list(load_image_text_dataset(builtin["csv"]["heldout"], "csv", image_size=40, training=False))
    assert [e["texts"].numpy() for e in examples] == [r["texts"].numpy() for r in records]
    from florence_keras.data.image_transforms import resize_center_crop
    for record, example in zip(records[:4], examples[:4]):
        np.testing.assert_array_equal(example["images"].numpy(), resize_center_crop(record["images"], 40).numpy())


def _sources(paths, data_format, num_pipelines):
    shares = []
    for index in range(num_pipelines):
        context = tf.distribute.InputContext(num_input_pipelines=num_pipelines, input_pipeline_id=index)
        records = load_image_records(paths, data_format, training=True, seed=1, input_context=context)
        shares.append([r["sources"].numpy() for r in records])
    return shares


@pytest.mark.parametrize("data_format, key, num_pipelines", [
    ("csv", "csv", 3),  # one index file: split by element
    ("tfrecord", "tfrecord", 2),  # four shards: split by file
    ("tfrecord", "single_tfrecord", 2),  # one shard: split by element
])
def test_sharding_splits_without_overlap_or_loss(builtin, data_format, key, num_pipelines):
    paths = builtin[data_format]["train"]
    if key == "single_tfrecord":
        paths = paths[:1]
    if data_format == "csv":
        everything = [p.encode() for p in read_csv_index(paths, ("filepath", "caption"))[0]]
    else:
        everything = [f"{path}#{i}".encode() for path in paths
                      for i in range(sum(1 for _ in tf.data.TFRecordDataset(path)))]
    shares = _sources(paths, data_format, num_pipelines)
    assert all(shares)
    flat = [source for share in shares for source in share]
    assert len(flat) == len(set(flat)) == len(everything) and set(flat) == set(everything)
    if key == "tfrecord":  # whole files go to one pipeline
        files = [{s.decode().rsplit("#", 1)[0] for s in share} for share in shares]
        assert not files[0] & files[1] and len(files[0]) == len(files[1]) == 2

"""Dirty data: every planted bad record is skipped and counted with the planted reason; 1x1 images train."""

import os

import numpy as np
import pytest
import tensorflow as tf

from florence_keras.data import image_decoding
from florence_keras.data.dirty_data import BAD_KINDS
from florence_keras.data.dirty_data import compare_with_report
from florence_keras.data.dirty_data import huge_png
from florence_keras.data.dirty_data import make_dirty_dataset
from florence_keras.data.dirty_data import plant_invalid_utf8_caption
from florence_keras.data.image_text_dataset import load_image_text_dataset
from florence_keras.training.pretrain_unicl import RecordSkipCounter

NUM_RECORDS = 320  # 5%: 16 bad records, 2 of each of the 8 kinds, and 2 valid 1x1 images


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    return make_dirty_dataset(str(tmp_path_factory.mktemp("dirty")), num_records=NUM_RECORDS, bad_fraction=0.05,
                              image_size=32, seed=5)


def test_manifest_plants_five_percent_spread_over_every_kind(dirty):
    assert dirty["num_bad"] == 16
    assert {kind: dirty["counts"][kind] for kind in BAD_KINDS} == {kind: 2 for kind in BAD_KINDS}
    assert dirty["counts"]["one_pixel"] == 2
    assert dirty["expected_skips"]["csv"] == {"bad_text": 2, "empty": 2, "missing": 2, "no_text": 2,
                                              "not_an_image": 2, "too_large": 2, "truncated": 4}
    assert dirty["expected_skips"]["wds"]["no_image"] == 2


def test_huge_png_is_refused_from_its_header():
    data = huge_png()
    assert len(data) < 100_000
    image, reason = image_decoding.decode_image_checked(data)
    assert int(reason) == image_decoding.TOO_LARGE and image.shape[0] == 0
    header = image_decoding.image_header(tf.constant(data))
    assert [int(header[1]), int(header[2])] == [20_000, 20_000]


@pytest.mark.parametrize("data_format", ["csv", "wds"])
def test_one_epoch_skips_exactly_the_planted_records(dirty, data_format):
    counter = RecordSkipCounter(name="dirty")
    dataset = load_image_text_dataset(dirty["paths"][data_format], data_format, image_size=32, training=True,
                                      seed=1, skip_counter=counter, keep_sources=True)
    sources = []
    for batch in dataset.batch(64):
        assert batch["images"].shape[1:] == (32, 32, 3)
        sources += [s.decode() for s in batch["sources"].numpy()]
    report = counter.report()
    assert report["skipped_records_by_reason"] == dirty["expected_skips"][data_format]
    assert report["skipped_reads"] == dirty["num_bad"]
    planted = {entry["source"]: kind for kind, entries in dirty["planted"].items() for entry in entries
               if entry["format"] == data_format}
    expected_reason = dirty["expected_reason_of_kind"][data_format]
    for source, reason in report["records"].items():
        assert expected_reason[planted[source]] == reason, source
    rows, equal = compare_with_report(dirty, report, data_format)
    assert equal, rows
    assert len(sources) == dirty["num_valid"] == NUM_RECORDS - 16
    one_pixel = [s for s, kind in planted.items() if kind == "one_pixel"]
    assert set(one_pixel) <= set(sources)  # 1x1 images are trained on, not skipped


@pytest.mark.parametrize("data_format", ["csv", "wds"])
def test_invalid_utf8_caption_costs_one_record(dirty, tmp_path, data_format):
    image = os.path.join(os.path.dirname(dirty["paths"]["csv"]), "clean", "images", "train", "train_000000.jpg")
    paths = plant_invalid_utf8_caption(str(tmp_path), image, formats=(data_format,))
    counter = RecordSkipCounter()
    texts = [b["texts"].numpy() for b in load_image_text_dataset(paths[data_format], data_format, image_size=32,
                                                                   training=False, skip_counter=counter)]
    assert texts == [] and counter.count == 1, (texts, counter.report())
    assert dict(counter.reasons) == {"bad_text": 1}


def test_skip_report_counts_distinct_records_over_epochs(dirty):
    counter = RecordSkipCounter()
    dataset = load_image_text_dataset(dirty["paths"]["csv"], "csv", image_size=32, training=True, seed=2,
                                      skip_counter=counter).repeat(2)
    count = sum(1 for _ in dataset)
    report = counter.report()
    assert count == 2 * dirty["num_valid"]
    assert report["skipped_reads"] == 2 * dirty["num_bad"]
    assert report["skipped_records"] == dirty["num_bad"]
    assert np.sum(list(report["skipped_records_by_reason"].values())) == dirty["num_bad"]

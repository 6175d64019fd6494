"""Fuzzing of TFRecord files: the Example parser (graph and Python) and the tfrecord pipeline.

Records: valid image-text Examples with hostile features (nasty or 100k-character captions, image bytes of any
kind, wrong feature types, repeated values), arbitrary bytes, or mutated Examples. Files: framed correctly, then
optionally damaged — bit flips, truncation, or a record's length field forged huge *with a valid length checksum*
(before the fix, TensorFlow's record reader allocated the forged length and the process died with SIGSEGV).

Property: the graph parser returns or raises `InvalidArgumentError` (eagerly, a `UnicodeDecodeError` when
TensorFlow's error message quotes invalid UTF-8); the Python parser returns bytes or None; the
pipeline yields images or counts documented skips (`corrupt_file` for a damaged file).
"""

import gzip
import os
import struct

import tensorflow as tf
from hypothesis import example
from hypothesis import given
from hypothesis import strategies as st

from florence_keras.data import tfrecord_example
from tests.fuzz import fuzz_support
from tests.fuzz.fuzz_support import case_timeout
from tests.fuzz.fuzz_support import fuzz_settings
from tests.fuzz.fuzz_support import nasty_text


def _crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked_crc(data):
    """The masked CRC-32C of TFRecord framing."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(record):
    """One TFRecord frame: length, masked CRC of the length, data, masked CRC of the data."""
    length = struct.pack("<Q", len(record))
    return length + struct.pack("<I", masked_crc(length)) + record + struct.pack("<I", masked_crc(record))


def _feature(kind, values):
    if kind == "bytes":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    if kind == "int":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[len(v) for v in values]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(len(v)) for v in values]))


@st.composite
def example_record(draw):
    features = {}
    for key in (tfrecord_example.IMAGE_KEY, tfrecord_example.TEXT_KEY, tfrecord_example.CLASS_KEY):
        if draw(st.integers(0, 3)) == 0:
            continue  # missing
        if key == tfrecord_example.IMAGE_KEY:
            values = draw(st.lists(fuzz_support.image_like_bytes(), min_size=0, max_size=2))
        else:
            text = st.one_of(nasty_text(), fuzz_support.long_text())
            values = [t.encode("utf-8") for t in draw(st.lists(text, min_size=0, max_size=2))]
        kind = draw(st.sampled_from(("bytes", "bytes", "bytes", "int", "float")))
        features[key] = _feature(kind, values)
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


VALID = tfrecord_example.make_image_text_example(fuzz_support.png_with_size(1, 1), caption="a cat")
records = st.one_of(example_record(), st.binary(max_size=200), fuzz_support.mutated(VALID))


@fuzz_settings(fast=150)
@given(record=records)
def test_example_parsers_return_or_raise_invalid_argument(record):
    with case_timeout("tfrecord"):
        try:
            parsed = tfrecord_example.parse_image_text_example(tf.constant(record))
            assert set(parsed) == {"data", "texts", "class_names"}
            fuzz_support.record("tfrecord", "parsed")
        except tf.errors.InvalidArgumentError:
            fuzz_support.record("tfrecord", "error:InvalidArgumentError")
        except UnicodeDecodeError:
            # TensorFlow quirk (eager only): the parse error's message quotes the record's bytes, and turning a
            # message with invalid UTF-8 into a Python str fails. A ValueError; inside tf.data the reader's
            # `ignore_errors` sees the InvalidArgumentError and counts the record.
            fuzz_support.record("tfrecord", "error:UnicodeDecodeError(eager)")
        image = tfrecord_example.parse_image_text_example_python(record)
    assert image is None or isinstance(image, bytes)


@st.composite
def tfrecord_file(draw):
    """`(file bytes, compressed, must_be_reported)`: any damage, to a plain or a GZIP file.

    `must_be_reported`: the damage leaves a record whose framing runs past the end of the data (a forged length,
    a cut inside a frame, a cut GZIP stream), so the reader must count the file as `corrupt_file`.
    """
    framed = [frame(r) for r in draw(st.lists(records, max_size=5))]
    damage = draw(st.sampled_from(("none", "mutate", "truncate", "forge_length", "truncate_gzip")))
    compressed = damage == "truncate_gzip" or draw(st.booleans())
    reported = False
    if damage == "forge_length" and framed:
        index = draw(st.integers(0, len(framed) - 1))
        length = struct.pack("<Q", draw(st.sampled_from((2**40, 2**63 - 1, 2**64 - 1, 10**9, 2**31))))
        framed[index] = length + struct.pack("<I", masked_crc(length)) + framed[index][12:]
        reported = True
    data = b"".join(framed)
    if damage == "mutate" and data:
        data = draw(fuzz_support.mutated(data))
    elif damage == "truncate" and data:
        cut = draw(st.integers(0, len(data) - 1))
        boundaries = {sum(len(f) for f in framed[:i]) for i in range(len(framed) + 1)}
        data, reported = data[:cut], cut not in boundaries  # a cut between frames leaves a valid shorter file
    if compressed:
        data = gzip.compress(data)
        if damage == "truncate_gzip":
            data = data[: draw(st.integers(1, len(data) - 1))]  # (an empty file is a valid empty file)
            reported = True
    return data, compressed, reported


def _forged(length):
    header = struct.pack("<Q", length)
    return frame(VALID) + header + struct.pack("<I", masked_crc(header)) + frame(VALID)[12:]


@fuzz_settings(fast=2, share=0.1)
@given(case=tfrecord_file())
@example(case=(_forged(2**40), False, True))  # crashed the process (SIGSEGV) before the fix
@example(case=(_forged(2**64 - 1), False, True))
@example(case=(gzip.compress(_forged(2**40)), True, True))  # ended the file silently before the fix
@example(case=(gzip.compress(frame(VALID) * 2)[:-9], True, True))  # a cut GZIP stream: also silent before
def test_tfrecord_pipeline_yields_or_counts(tmp_path_factory, case):
    data, compressed, must_be_reported = case
    directory = str(tmp_path_factory.mktemp("tfrecord"))
    path = os.path.join(directory, "data-000.tfrecord" + (".gz" if compressed else ""))
    with open(path, "wb") as f:
        f.write(data)
    with case_timeout("tfrecord"):
        result = fuzz_support.drain_records(path, "tfrecord")
    fuzz_support.record_drain("tfrecord", result)
    assert result[2] is None, result[2]
    if must_be_reported:
        assert result[1].reasons.get("corrupt_file") == 1, (compressed, dict(result[1].reasons))

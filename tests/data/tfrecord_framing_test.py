"""tfrecord_framing: which records of a plain or GZIP TFRecord file are framed within the file."""

import gzip
import os
import struct

import pytest
import tensorflow as tf

from florence_keras.data.tfrecord_framing import framed_record_count


def _write(directory, name, records, tail=b"", compress=False):
    path = os.path.join(directory, name)
    with tf.io.TFRecordWriter(path + ".tmp") as writer:  # TensorFlow's own framing, independent of ours
        for record in records:
            writer.write(record)
    data = open(path + ".tmp", "rb").read() + tail
    data = gzip.compress(data) if compress else data
    with open(path, "wb") as f:
        f.write(data)
    return path, len(data)


def _forged_header(length):
    return struct.pack("<Q", length) + b"\0" * 4  # the length CRC is TensorFlow's to check, not ours


@pytest.mark.parametrize("compress", [False, True])
def test_intact_files_are_complete(tmp_path, compress):
    records = [b"a", b"", b"x" * 3000]
    path, size = _write(str(tmp_path), "ok", records, compress=compress)
    assert framed_record_count(path, size, compress) == (3, True)
    empty, size = _write(str(tmp_path), "empty", [], compress=compress)
    assert framed_record_count(empty, size, compress) == (0, True)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("length", [2**40, 2**64 - 1, 100])
def test_a_forged_length_stops_the_count(tmp_path, compress, length):
    path, size = _write(str(tmp_path), "forged", [b"abc", b"de"], tail=_forged_header(length) + b"z" * 50,
                        compress=compress)
    assert framed_record_count(path, size, compress) == (2, False)


def test_a_cut_gzip_stream_is_incomplete(tmp_path):
    path, size = _write(str(tmp_path), "cut", [b"abc"] * 3, compress=True)
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:-6])  # inside the GZIP trailer: every record decompresses, the stream does not end
    assert framed_record_count(path, size - 6, True) == (3, False)


def test_not_gzip_and_missing_files(tmp_path):
    path = os.path.join(str(tmp_path), "plain_bytes.gz")
    with open(path, "wb") as f:
        f.write(b"this is not gzip data at all")
    assert framed_record_count(path, 28, True) == (0, False)
    assert framed_record_count(os.path.join(str(tmp_path), "missing"), 0, False) == (0, False)


def test_a_rewritten_file_is_checked_again(tmp_path):
    path, size = _write(str(tmp_path), "rewritten", [b"abc"], compress=True)
    assert framed_record_count(path, size, True) == (1, True)
    stat = os.stat(path)
    _write(str(tmp_path), "rewritten", [b"abc", b"def"], compress=True)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert framed_record_count(path, os.path.getsize(path), True) == (2, True)

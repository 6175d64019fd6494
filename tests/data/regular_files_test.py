"""regular_files: FIFOs, sockets, devices and directories are recognised before anything opens them."""

import os
import socket

import pytest

from florence_keras.data import regular_files
from florence_keras.data.file_patterns import expand_paths
from florence_keras.data.skip_counter import SkipCounter


def test_kinds_of_paths(tmp_path, monkeypatch):
    regular = tmp_path / "a.png"
    regular.write_bytes(b"x")
    fifo = str(tmp_path / "pipe")
    os.mkfifo(fifo)
    sock = socket.socket(socket.AF_UNIX)
    monkeypatch.chdir(tmp_path)
    sock.bind("sock")  # relative: a socket path is limited to ~108 bytes (Bazel's tmp paths are longer)
    try:
        assert regular_files.is_special_file(fifo)
        assert regular_files.is_special_file(str(tmp_path / "sock"))
        assert regular_files.is_special_file("/dev/zero")
        assert regular_files.is_special_file(str(tmp_path))  # a directory
        assert regular_files.is_special_file(fifo.encode())
    finally:
        sock.close()
    assert not regular_files.is_special_file(str(regular))
    assert not regular_files.is_special_file(str(tmp_path / "missing.png"))  # the reader reports it as missing
    os.symlink(str(tmp_path / "nowhere"), str(tmp_path / "dangling"))
    assert not regular_files.is_special_file(str(tmp_path / "dangling"))
    assert not regular_files.is_special_file("gs://bucket/pipe")


def test_drop_special_files_keeps_the_other_rows_in_order(tmp_path):
    fifo = str(tmp_path / "pipe")
    os.mkfifo(fifo)
    counter = SkipCounter()
    paths, texts = regular_files.drop_special_files(["a", fifo, "b", "/dev/zero"], ["1", "2", "3", "4"],
                                                    skip_counter=counter)
    assert (paths, texts) == (["a", "b"], ["1", "3"])
    assert dict(counter.reasons) == {"not_a_file": 2}
    unchanged = (["a"], ["1"])
    assert regular_files.drop_special_files(*unchanged) == unchanged


def test_expand_paths_refuses_a_fifo_shard(tmp_path):
    (tmp_path / "data-0.tfrecord").write_bytes(b"")
    os.mkfifo(str(tmp_path / "data-1.tfrecord"))
    with pytest.raises(ValueError, match=r"data-1\.tfrecord' is not a regular file"):
        expand_paths(str(tmp_path), directory_suffixes=(".tfrecord",))
    with pytest.raises(ValueError, match="not a regular file"):
        expand_paths(str(tmp_path / "data-*.tfrecord"))
    assert expand_paths(str(tmp_path / "data-0.tfrecord")) == [str(tmp_path / "data-0.tfrecord")]

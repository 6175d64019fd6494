"""Checks a TFRecord file's framing in Python before TensorFlow reads it (plain or GZIP).

A TFRecord file is a sequence of frames: an 8-byte little-endian length, a 4-byte CRC of the length, the data,
a 4-byte CRC of the data. TensorFlow's reader of plain files allocates the declared length before reading, so a
length field forged to e.g. 2**40 (with a valid length CRC) kills the process; its GZIP reader survives a forged
length but silently ends the file there. `framed_record_count` walks the frames (for GZIP, through the
decompressed stream, memory bounded) and says how many records fit and whether the file ends exactly after the
last one, so the pipeline reads only those records and reports an incomplete file as `corrupt_file`.
"""

import functools
import gzip
import zlib

import tensorflow as tf

FRAME_OVERHEAD = 16  # length (8) + length CRC (4) + data CRC (4)
_SKIP_CHUNK = 1 << 20  # bytes decompressed per read when skipping a GZIP record's data


def _plain_framing(f, size):
    count, offset = 0, 0
    while offset + FRAME_OVERHEAD <= size:
        f.seek(offset)
        length = int.from_bytes(f.read(8), "little")
        if length > size - offset - FRAME_OVERHEAD:
            return count, False
        offset += length + FRAME_OVERHEAD
        count += 1
    return count, offset == size


def _skip(stream, count):
    """Reads and drops `count` bytes in bounded chunks; returns how many there were."""
    skipped = 0
    while skipped < count:
        chunk = stream.read(min(_SKIP_CHUNK, count - skipped))
        if not chunk:
            break
        skipped += len(chunk)
    return skipped


def _read_exactly(stream, count):
    data = b""
    while len(data) < count:
        chunk = stream.read(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _gzip_framing(f):
    count = 0
    with gzip.GzipFile(fileobj=f, mode="rb") as stream:
        try:
            while True:
                header = _read_exactly(stream, 12)
                if not header:
                    return count, True
                if len(header) < 12:
                    return count, False
                body = int.from_bytes(header[:8], "little") + 4  # data + data CRC
                if _skip(stream, body) < body:
                    return count, False
                count += 1
        except (OSError, EOFError, zlib.error):
            # A cut or damaged stream: the records before the damage are still read (and the file reported).
            return count, False


@functools.lru_cache(maxsize=4096)
def _cached_framing(path, size, mtime, compressed):
    del mtime  # part of the cache key only: a rewritten file is checked again
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            return _gzip_framing(f) if compressed else _plain_framing(f, size)
    except (OSError, EOFError, zlib.error, tf.errors.OpError):
        # Unreadable or not GZIP: no record is known to fit; TensorFlow's reader meets the same error.
        return 0, False


def framed_record_count(path, size, compressed):
    """How many leading records of a TFRecord file are framed within the file, and whether that is all of it.

    Args:
        path: str, the file (any `tf.io.gfile` path).
        size: int, the file's size in bytes (of the compressed file for GZIP).
        compressed: bool, GZIP.

    Returns:
        `(count, complete)`: the records before the first one whose declared length runs past the end of the
        file (or of the decompressed stream), and True when the file ends exactly after record `count`.
        Record CRCs are not checked here (TensorFlow's reader checks them). GZIP files are decompressed once per
        (path, size, modification time) and the answer is remembered.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "empty.tfrecord")
    >>> open(path, "wb").close()
    >>> framed_record_count(path, 0, compressed=False)
    (0, True)
    """
    try:
        mtime = tf.io.gfile.stat(path).mtime_nsec
    except tf.errors.OpError:
        return 0, False
    return _cached_framing(path, int(size), mtime, bool(compressed))

"""Indexes webdataset tar shards: one sample per key (`dir/key.jpg` + `dir/key.txt`), without extracting.

The reader reads each image's bytes straight from the tar at the recorded offset (`FixedLengthRecordDataset` with
header/footer bytes), so image data never passes through Python; only the tar headers and the small text members
are read here. Samples lacking an image or a text, members cut by the end of the file, members whose name is
absolute or contains `..` (`unsafe_path`), and shards that end before their end-of-archive marker (samples may be
lost there) are reported to a `SkipCounter`. Links and other non-file members are never read.
"""

import posixpath
import tarfile

import numpy as np
import tensorflow as tf

# Image extensions in order of preference when a sample holds several.
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif")
TEXT_EXTENSIONS = ("txt", "text", "caption")


def is_unsafe_name(name):
    """Whether a member name is absolute or climbs out of the archive's folder (`..`): never used as a key.

    The reader never extracts members (it reads their bytes in place), so such a name could not write outside a
    folder here; it is refused anyway, so that a key never names a path outside the shard's folder (e.g. for a
    tool that writes samples out by key).
    """
    return name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/")


def _split_key(name):
    directory, base = posixpath.split(name)
    if "." not in base:
        return None, None
    stem, extension = base.split(".", 1)
    return posixpath.join(directory, stem), extension.lower()


class _BoundedFile:
    """A `GFile` whose reads never ask for more bytes than the file has left.

    tarfile reads a PAX or GNU long-name header's data in one call of its declared size, and `GFile.read(n)`
    allocates `n` bytes first: a size field forged to 2**40 crashed the process (SIGSEGV) before this bound.
    """

    def __init__(self, f, size):
        self._f = f
        self._size = size

    def read(self, n=-1):
        left = max(self._size - self._f.tell(), 0)
        return self._f.read(left if n is None or n < 0 else min(n, left))

    def seek(self, offset, whence=0):
        return self._f.seek(offset, whence)

    def tell(self):
        return self._f.tell()


def _caption(data):
    """A caption's bytes, stripped. Invalid UTF-8 is kept as it is: the reader counts it as `bad_text`."""
    try:
        return data.decode("utf-8").strip().encode("utf-8")
    except UnicodeDecodeError:
        return data.strip()


def index_tar_shard(path, skip_counter=None, text_extensions=TEXT_EXTENSIONS):
    """Lists the image-text samples of one tar shard.

    Args:
        path: str, the tar file (any `tf.io.gfile` path).
        skip_counter: `SkipCounter` told about incomplete samples and truncated shards (None: not reported).
        text_extensions: extensions of text members, in order of preference.

    Returns:
        dict of numpy arrays, one entry per complete sample, in tar order: `keys` (bytes), `offsets` (int64, of
        the image data), `lengths` (int64), `footers` (int64, bytes after the image data), `texts` (bytes).
    """
    size = tf.io.gfile.stat(path).length
    members = {}
    order = []
    problem = None
    unsafe = []  # names of regular members refused by `is_unsafe_name`
    archive_end = 0  # where the last member's padded data ends
    with tf.io.gfile.GFile(path, "rb") as f:
        try:
            with tarfile.open(fileobj=_BoundedFile(f, size), mode="r:") as tar:
                for member in tar:
                    archive_end = max(archive_end, member.offset_data + -(-member.size // 512) * 512)
                    if not member.isfile():
                        continue
                    key, extension = _split_key(member.name)
                    if key is None:
                        continue
                    if is_unsafe_name(member.name):
                        unsafe.append(member.name)
                        continue
                    if key not in members:
                        members[key] = {}
                        order.append(key)
                    members[key][extension] = (member.offset_data, member.size)
        except tf.errors.OutOfRangeError:  # GFile refuses to seek past the end: a member was cut
            problem = "truncated"
        except tarfile.TarError as error:
            problem = f"corrupt_tar ({error})"
        if problem is None and archive_end + 1024 > size:
            # tarfile stops silently at a cut header; a complete archive ends with two zero blocks.
            problem = "truncated"
        elif problem is None:
            f.seek(archive_end)
            if f.read(1024).strip(b"\0"):
                problem = "truncated"
        texts = {}
        for key in order:
            text_member = next((members[key][ext] for ext in text_extensions if ext in members[key]), None)
            if text_member is not None and text_member[0] + text_member[1] <= size:
                f.seek(text_member[0])
                texts[key] = _caption(f.read(text_member[1]))
    cut_member = any(offset + length > size for entry in members.values() for offset, length in entry.values())
    if problem and not cut_member and skip_counter is not None:  # a cut member is reported below instead
        skip_counter.record(problem.split(" ")[0], path)
    if skip_counter is not None:
        for name in unsafe:
            skip_counter.record("unsafe_path", f"{path}:{name}")
    keys, offsets, lengths, footers, captions = [], [], [], [], []
    for key in order:
        image = next((members[key][ext] for ext in IMAGE_EXTENSIONS if ext in members[key]), None)
        source = f"{path}:{key}"
        if image is None or key not in texts:
            if skip_counter is not None:
                skip_counter.record("no_image" if image is None else "no_text", source)
            continue
        offset, length = image
        if offset + length > size:
            if skip_counter is not None:
                skip_counter.record("truncated", source)
            continue
        keys.append(key.encode("utf-8", "surrogateescape"))  # tarfile keeps undecodable name bytes as surrogates
        offsets.append(offset)
        lengths.append(length)
        footers.append(size - offset - length)
        captions.append(texts[key])
    return {
        "keys": np.array(keys, dtype=object),
        "offsets": np.array(offsets, dtype=np.int64),
        "lengths": np.array(lengths, dtype=np.int64),
        "footers": np.array(footers, dtype=np.int64),
        "texts": np.array(captions, dtype=object),
    }

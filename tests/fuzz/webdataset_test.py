"""Fuzzing of webdataset tar shards: the tar index (`index_tar_shard`) and the wds pipeline.

Tars are built with hostile members — absolute names, `..`, symlinks and hardlinks (also pointing outside), FIFOs
and devices, directories named like images, duplicate names, non-UTF-8 and 100-plus-character names (GNU/PAX
long names), empty and huge members — then optionally damaged: bit flips, truncation, or a member's size field
forged huge (octal or base-256, header checksum fixed).

Property: the index raises nothing but `OSError` / `tf.errors.OpError` (the reader counts those as
`missing` / `unreadable`), returns only keys that are safe relative names, and only byte ranges inside the file;
the pipeline yields images or counts documented skips.
"""

import io
import os
import tarfile

import tensorflow as tf
from hypothesis import example
from hypothesis import given
from hypothesis import strategies as st

from florence_keras.data import webdataset_index
from florence_keras.data.skip_counter import SkipCounter
from tests.fuzz import fuzz_support
from tests.fuzz.fuzz_support import case_timeout
from tests.fuzz.fuzz_support import fuzz_settings
from tests.fuzz.fuzz_support import nasty_text

KEYS = ("a", "b", "dir/c", "/abs/d", "../up", "a/../../e", "k\udcff", "x" * 120, "./f", "")
EXTENSIONS = ("jpg", "png", "txt", "caption", "json", "JPG", "tar.gz", "")
TYPES = (tarfile.REGTYPE, tarfile.REGTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE,
         tarfile.FIFOTYPE, tarfile.CHRTYPE)


@st.composite
def member(draw):
    key = draw(st.one_of(st.sampled_from(KEYS), nasty_text(12)))
    extension = draw(st.sampled_from(EXTENSIONS))
    name = f"{key}.{extension}" if extension else key
    kind = draw(st.sampled_from(TYPES))
    if extension in ("txt", "caption"):
        data = draw(st.one_of(nasty_text(), fuzz_support.long_text(3000))).encode("utf-8", "surrogateescape")
    else:
        data = draw(fuzz_support.image_like_bytes())
    link = draw(st.sampled_from(("a.jpg", "/etc/passwd", "../../outside.jpg", "b.txt", "")))
    return name, kind, data, link


@st.composite
def sample(draw):
    """A complete sample (image + text member of one key, regular files) — the members a shard should have."""
    key = draw(st.one_of(st.sampled_from(KEYS), nasty_text(12)))
    image = (f"{key}.{draw(st.sampled_from(('jpg', 'png', 'webp')))}", tarfile.REGTYPE,
             draw(fuzz_support.image_like_bytes()), "")
    text = draw(st.one_of(nasty_text(), fuzz_support.long_text(3000))).encode("utf-8", "surrogateescape")
    return [image, (f"{key}.txt", tarfile.REGTYPE, text, "")]


@st.composite
def tar_shard(draw):
    """Raw bytes of a tar shard built from complete samples and hostile members, possibly damaged afterwards."""
    members = [m for pair in draw(st.lists(sample(), max_size=4)) for m in pair] + draw(st.lists(member(), max_size=6))
    members = draw(st.permutations(members))
    tar_format = draw(st.sampled_from((tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT)))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for name, kind, data, link in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = link
            try:
                if kind == tarfile.REGTYPE:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                else:
                    tar.addfile(info)
            except ValueError:  # a name USTAR can't hold
                continue
    data = buffer.getvalue()
    damage = draw(st.sampled_from(("none", "none", "mutate", "forge_size", "truncate")))
    if damage == "mutate":
        data = draw(fuzz_support.mutated(data))
    elif damage == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "forge_size" and len(data) >= 512:
        data = _forge_size(data, draw(st.integers(0, len(data) // 512 - 1)) * 512,
                           draw(st.sampled_from((2**33 - 1, 2**40, 2**62, 10**9))), draw(st.booleans()))
    return data


def _forge_size(data, header, size, base256):
    """Rewrites the size field of the header block at `header` and fixes the header checksum."""
    data = bytearray(data)
    if base256:
        field = b"\x80" + size.to_bytes(11, "big")
    else:
        field = (f"{min(size, 8**11 - 1):011o}".encode() + b"\0")
    data[header + 124 : header + 136] = field
    data[header + 148 : header + 156] = b" " * 8
    checksum = sum(data[header : header + 512])
    data[header + 148 : header + 156] = f"{checksum:06o}\0 ".encode()
    return bytes(data)


def _pax_header_bomb():
    """A PAX tar (a non-ASCII name forces an extended header first) whose extended header's size is forged to
    2**40: tarfile asked GFile for 2**40 bytes at once and the process died (SIGSEGV) before the fix."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("ünï.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    return _forge_size(buffer.getvalue(), 0, 2**40, True)


def _write(directory, data):
    path = os.path.join(str(directory), "shard-000.tar")
    with open(path, "wb") as f:
        f.write(data)
    return path


@fuzz_settings(fast=150)
@given(data=tar_shard())
@example(data=_pax_header_bomb())
def test_tar_index_returns_safe_keys_and_ranges_inside_the_file(tmp_path_factory, data):
    path = _write(tmp_path_factory.mktemp("wds"), data)
    counter = SkipCounter()
    with case_timeout("webdataset"):
        try:
            found = webdataset_index.index_tar_shard(path, counter)
        except (OSError, tf.errors.OpError) as error:  # counted by the reader as missing / unreadable
            fuzz_support.record("webdataset", f"error:{type(error).__name__}")
            return
    count = len(found["keys"])
    assert all(len(found[name]) == count for name in ("offsets", "lengths", "footers", "texts"))
    for key, offset, length, footer in zip(found["keys"], found["offsets"], found["lengths"], found["footers"]):
        assert not webdataset_index.is_unsafe_name(key.decode("utf-8", "surrogateescape")), key
        assert 0 <= offset and 0 <= length and offset + length + footer == len(data)
    assert set(counter.reasons) <= fuzz_support.DOCUMENTED_SKIP_REASONS, counter.reasons
    fuzz_support.record("webdataset", "data" if count else "no_samples")
    for reason in counter.reasons:
        fuzz_support.record("webdataset", f"skip:{reason}")


@fuzz_settings(fast=3, share=0.1)
@given(data=tar_shard())
def test_wds_pipeline_yields_or_counts(tmp_path_factory, data):
    path = _write(tmp_path_factory.mktemp("wds_pipeline"), data)
    with case_timeout("webdataset"):
        result = fuzz_support.drain_records(path, "wds")
    fuzz_support.record_drain("webdataset", result)
    assert result[2] is None, result[2]

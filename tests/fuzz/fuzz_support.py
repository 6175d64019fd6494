"""Shared pieces of the input fuzz tests: settings (fast / nightly), a per-case timeout, outcome counts, strategies.

Modes:
* fast (default, the normal suite): each test runs its own small `fast` number of cases, derandomized (the same
  cases every run), so the whole `tests/fuzz` folder stays well under 90 s on two cores.
* nightly: `FLORENCE_FUZZ_EXAMPLES=N` gives every test `max(fast, N * share)` random cases (`share` < 1 for tests
  whose cases each build a tf.data pipeline or load a model); `FLORENCE_FUZZ_SEED` fixes the seed.
  `tools/fuzz_nightly.py` sets these and prints the cases run per input path.

Every case runs under `case_timeout`: a SIGALRM that raises `CaseTimeout` (a hang in Python code), backed by
`faulthandler.dump_traceback_later(exit=True)` (a hang inside a TensorFlow kernel, where no Python signal handler
runs: the process dumps its stacks and exits, which fails the run loudly instead of hanging it).
"""

import collections
import contextlib
import faulthandler
import json
import os
import signal
import struct
import sys

from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import settings
from hypothesis import strategies as st

NIGHTLY_EXAMPLES = int(os.environ.get("FLORENCE_FUZZ_EXAMPLES", "0") or 0)
NIGHTLY = NIGHTLY_EXAMPLES > 0
SEED = os.environ.get("FLORENCE_FUZZ_SEED")
# Wall-clock limit of one case (seconds): generous, as the machine may be shared; a hang is minutes, not seconds.
CASE_TIMEOUT_S = float(os.environ.get("FLORENCE_FUZZ_CASE_TIMEOUT", "60"))

# input path -> outcome -> count, written by conftest.py at the end of the session when FLORENCE_FUZZ_REPORT is set.
OUTCOMES = collections.defaultdict(collections.Counter)


def fuzz_settings(fast, share=1.0):
    """Hypothesis settings of one fuzz test.

    Args:
        fast: cases in the normal (fast) suite; 0: only the test's explicit `@example`s.
        share: fraction of `FLORENCE_FUZZ_EXAMPLES` this test runs in nightly mode (pipeline tests: < 1).

    Returns:
        `hypothesis.settings` (a decorator).
    """
    examples = max(fast, int(NIGHTLY_EXAMPLES * share)) if NIGHTLY else fast
    phases = None if examples else [Phase.explicit]  # fast=0: only the test's @example cases in the fast suite
    return settings(
        max_examples=max(examples, 1),
        phases=phases or tuple(Phase),
        deadline=None,  # timing is enforced by `case_timeout`; a shared machine makes deadlines flaky
        derandomize=not NIGHTLY,
        database=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )


class CaseTimeout(Exception):
    """One fuzz case ran past its time limit (a hang)."""


@contextlib.contextmanager
def case_timeout(path, seconds=CASE_TIMEOUT_S):
    """Runs one case of input path `path` (counted as `cases`); fails it after `seconds` (see the module docstring)."""
    OUTCOMES[path]["cases"] += 1

    def on_alarm(signum, frame):
        raise CaseTimeout(f"fuzz case exceeded {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(seconds * 3, exit=True, file=sys.stderr)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()


class FifoWatch:
    """Watches FIFOs while a reader runs: if anything opens one for reading, it is unblocked (a writer opens and
    closes it, so the reader sees end-of-file) and the FIFO is listed in `opened`.

    A reader blocked in `open()` inside TensorFlow can't be interrupted by a Python timeout; with this, a
    regression fails its test in a fraction of a second instead of hanging the suite.
    """

    def __init__(self, fifos, poll_s=0.05):
        import threading

        self.fifos, self.poll_s, self.opened = list(fifos), poll_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self._stop.is_set():
            for fifo in self.fifos:
                try:  # succeeds only while a reader has the FIFO open (else ENXIO)
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                    self.opened.append(fifo)
                except OSError:
                    pass
            self._stop.wait(self.poll_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()


def record(path, outcome):
    """Counts one case outcome of an input path (`data`, `skip:<reason>`, `error:<Type>`)."""
    OUTCOMES[path][outcome] += 1


def write_report(filename):
    """Writes the outcome counts as JSON (merged with what is already in the file)."""
    existing = {}
    if os.path.exists(filename):
        with open(filename, encoding="utf-8") as f:
            existing = json.load(f)
    for path, counts in OUTCOMES.items():
        merged = collections.Counter(existing.get(path, {}))
        merged.update(counts)
        existing[path] = dict(merged)
    with open(filename, "w", encoding="utf-8") as f:
        json.dump(existing, f, indent=1, sort_keys=True)


# ---------------------------------------------------------------------------------------------------------------
# Strategies.

# Characters that break parsers: quoting, delimiters, line ends, NUL, BOM, bidi overrides, separators, surrogate
# escapes' neighbours, combining marks, emoji.
NASTY_CHARS = ',"\'\t\n\r\x00\x0b\x0c\x1b\x7f\x85\ufeff\u2028\u2029\u202e\u200b\u0301\ufffd\U0001f600\\/.:;|'
NASTY_STRINGS = ("..", "../", "/", "~", "<|endoftext|>", "<|startoftext|>", "NaN", "null", "\r\n", '""', "ﬁ",
                 "İ", "ß", "\u0130\u0307", "%s%n", "${x}", "\x00\x00")


def nasty_text(max_size=40):
    """Short strings of any Unicode (no lone surrogates), biased to parser-breaking characters."""
    return st.one_of(
        st.text(max_size=max_size),
        st.text(alphabet=st.sampled_from(NASTY_CHARS + "ab "), max_size=max_size),
        st.sampled_from(NASTY_STRINGS),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=max_size),
    )


def long_text(max_chars=100_000):
    """Very long strings (up to `max_chars` characters) built by repeating a short random piece."""
    return st.builds(
        lambda piece, n: (piece * (max_chars // max(len(piece), 1)))[: max(n, 1)],
        st.text(min_size=1, max_size=8),
        st.integers(1, max_chars),
    )


@st.composite
def mutated(draw, data, max_mutations=4):
    """`data` (bytes) after a few random mutations: bit flips, byte overwrites, truncation, insertion, deletion,
    duplication of a chunk, or a 2/4/8-byte field forged to a huge or zero value (little or big endian)."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, max_mutations))):
        kind = draw(st.sampled_from(("flip", "byte", "truncate", "insert", "delete", "duplicate", "field")))
        if not data and kind != "insert":
            kind = "insert"
        if kind == "flip":
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif kind == "truncate":
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif kind == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            i = draw(st.integers(0, len(data) - 1))
            del data[i : i + draw(st.integers(1, 16))]
        elif kind == "duplicate":
            i = draw(st.integers(0, len(data) - 1))
            data[i:i] = data[i : i + draw(st.integers(1, 64))]
        else:
            size = draw(st.sampled_from((2, 4, 8)))
            if len(data) < size:
                continue
            i = draw(st.integers(0, len(data) - size))
            value = draw(st.sampled_from((0, 1, 2 ** (size * 8 - 1) - 1, 2 ** (size * 8) - 1, 50_000, 2**31)))
            value %= 2 ** (size * 8)
            data[i : i + size] = value.to_bytes(size, draw(st.sampled_from(("little", "big"))))
    return bytes(data)


def hostile_bytes(valid_samples, max_size=256):
    """Arbitrary bytes, or a mutation of one of `valid_samples` (a list of bytes)."""
    return st.one_of(
        st.binary(max_size=max_size),
        st.sampled_from(valid_samples).flatmap(mutated),
        st.sampled_from(valid_samples),
    )


def png_with_size(height, width):
    """A tiny valid PNG (1x1) whose IHDR is rewritten to declare `height x width` (CRC fixed)."""
    import zlib

    import numpy as np
    import tensorflow as tf

    data = bytearray(tf.io.encode_png(np.zeros((1, 1, 3), np.uint8)).numpy())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


_IMAGE_SAMPLES = None


def image_samples():
    """Small valid images in every supported format (PNG gray/RGB/RGBA/16-bit, JPEG, GIF, BMP, WebP), built once."""
    global _IMAGE_SAMPLES
    if _IMAGE_SAMPLES is None:
        import io

        import numpy as np
        import tensorflow as tf
        from PIL import Image

        rng = np.random.default_rng(0)
        rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
        samples = [
            tf.io.encode_png(rgb).numpy(),
            tf.io.encode_png(rgb[..., :1]).numpy(),
            tf.io.encode_png(np.concatenate([rgb, rgb[..., :1]], -1)).numpy(),
            tf.io.encode_png(rgb.astype(np.uint16) * 257).numpy(),
            tf.io.encode_jpeg(rgb).numpy(),
            tf.io.encode_jpeg(rgb, progressive=True).numpy(),
        ]
        for fmt in ("GIF", "BMP", "WEBP"):
            buffer = io.BytesIO()
            try:
                Image.fromarray(rgb).save(buffer, fmt)
            except (KeyError, OSError):  # a Pillow without WebP
                continue
            samples.append(buffer.getvalue())
        samples.append(png_with_size(50_000, 50_000))  # a decompression bomb (header only)
        _IMAGE_SAMPLES = samples
    return _IMAGE_SAMPLES


def image_like_bytes(max_size=256):
    """Hostile image bytes: arbitrary, a valid image, a mutated valid image, or a magic number + junk."""
    magic = st.sampled_from((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"RIFF\0\0\0\0WEBPVP8X"))
    return st.one_of(
        st.builds(lambda: None).flatmap(lambda _: hostile_bytes(image_samples(), max_size)),
        st.builds(lambda m, rest: m + rest, magic, st.binary(max_size=64)),
    )


# Every reason a reader may give for a counted skip (SkipCounter): the documented ones.
DOCUMENTED_SKIP_REASONS = frozenset({
    "missing", "unreadable", "empty", "not_an_image", "too_large", "corrupt", "truncated", "no_text", "no_image",
    "corrupt_record", "corrupt_file", "corrupt_tar", "unsafe_path", "bad_name", "not_a_file", "bad_text",
})


def drain_records(paths, data_format, **kwargs):
    """Builds `load_image_records` and reads it to the end, checking every element.

    Returns:
        `(num_elements, skip_counter, build_error)`: `build_error` is the documented exception raised while
        building (`ValueError` incl. `DataFormatError`, or `FileNotFoundError`), else None. Any other exception,
        at build time or while iterating, propagates (the test fails).
    """
    import tensorflow as tf

    from florence_keras.data.image_records import load_image_records
    from florence_keras.data.skip_counter import SkipCounter

    counter = SkipCounter(max_examples=3)
    try:
        dataset = load_image_records(paths, data_format, skip_counter=counter, log_skips_each_epoch=False,
                                     num_parallel_calls=1, **kwargs)
    except (ValueError, FileNotFoundError) as error:
        return None, counter, error
    count = 0
    for element in dataset:
        image = element["images"]
        assert image.dtype == tf.uint8 and image.shape.rank == 3 and image.shape[-1] == 3, image.shape
        assert image.shape[0] > 0 and image.shape[1] > 0, image.shape
        count += 1
    undocumented = set(counter.reasons) - DOCUMENTED_SKIP_REASONS
    assert not undocumented, f"undocumented skip reasons {undocumented}: {counter.first_sources}"
    return count, counter, None


def record_drain(path, result):
    """Counts the outcome of `drain_records` for the report."""
    count, counter, error = result
    if error is not None:
        record(path, f"error:{type(error).__name__}")
        return
    if count:
        record(path, "data")
    for reason, n in counter.reasons.items():
        record(path, f"skip:{reason}")

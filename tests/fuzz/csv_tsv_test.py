"""Fuzzing of CSV/TSV index files: the parser (`read_csv_index`) and the whole csv/tsv/csvlabel pipeline.

Property: every file either parses into equal-length lists of str (non-empty paths) or raises `DataFormatError`;
a file written by `csv.writer` reads back exactly; the pipeline yields images or counts documented skips, and
every listed row is accounted for (yielded + skipped == rows).
"""

import csv
import io
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from florence_keras.data.csv_index import read_csv_index
from florence_keras.data.csv_index import resolve_path
from florence_keras.data.data_format_error import DataFormatError
from tests.fuzz import fuzz_support
from tests.fuzz.fuzz_support import case_timeout
from tests.fuzz.fuzz_support import fuzz_settings
from tests.fuzz.fuzz_support import nasty_text

COLUMNS = ("filepath", "caption")
VALID_CSV = 'filepath,caption\na.png,"a red, ""quoted""\ncircle"\nb.png,plain\n'.encode()


@st.composite
def chaotic_table(draw):
    """Raw bytes of a CSV/TSV-like file: random header, rows of nasty fields, any quoting, line ends, encoding."""
    header = draw(st.one_of(
        st.just(list(COLUMNS)),
        st.permutations(list(COLUMNS) + ["extra"]),
        st.lists(nasty_text(12), max_size=4),
        st.just(["filepath", "filepath", "caption"]),
    ))
    width = draw(st.integers(0, 4))
    rows = draw(st.lists(st.lists(nasty_text(), min_size=width, max_size=width + draw(st.integers(0, 1))),
                         max_size=8))
    delimiter = draw(st.sampled_from((",", "\t", ";")))
    terminator = draw(st.sampled_from(("\n", "\r\n", "\r")))
    if draw(st.booleans()):
        buffer = io.StringIO()
        quoting = draw(st.sampled_from((csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC)))
        csv.writer(buffer, delimiter=delimiter, lineterminator=terminator, quoting=quoting).writerows([header] + rows)
        text = buffer.getvalue()
    else:  # no quoting at all: delimiters and line ends inside fields break the structure
        text = terminator.join(delimiter.join(row) for row in [header] + rows)
    encoding = draw(st.sampled_from(("utf-8", "utf-8-sig", "utf-16", "latin-1")))
    return text.encode(encoding, "replace")


index_bytes = st.one_of(
    chaotic_table(),
    st.binary(max_size=300),
    fuzz_support.mutated(VALID_CSV),
)


def _write(tmp_path, name, data):
    path = os.path.join(str(tmp_path), name)
    with open(path, "wb") as f:
        f.write(data)
    return path


@pytest.mark.parametrize("delimiter", [",", "\t"])
@fuzz_settings(fast=120)
@given(data=index_bytes)
def test_read_csv_index_parses_or_raises_data_format_error(tmp_path_factory, delimiter, data):
    path = _write(tmp_path_factory.mktemp("csv"), "index.csv", data)
    with case_timeout("csv_tsv"):
        try:
            paths, values = read_csv_index(path, COLUMNS, delimiter)
        except DataFormatError as error:
            assert error.path == path
            fuzz_support.record("csv_tsv", "error:DataFormatError")
            return
    assert len(paths) == len(values)
    assert all(isinstance(p, str) and p for p in paths) and all(isinstance(v, str) for v in values)
    fuzz_support.record("csv_tsv", "data" if paths else "no_rows")


row = st.tuples(nasty_text().filter(lambda text: text.strip()), st.one_of(nasty_text(), fuzz_support.long_text(300)))


@fuzz_settings(fast=60)
@given(rows=st.lists(row, max_size=6), terminator=st.sampled_from(("\n", "\r\n")), bom=st.booleans())
def test_csv_written_by_csv_writer_reads_back(tmp_path_factory, rows, terminator, bom):
    buffer = io.StringIO()
    # Python 3.11's writer quotes a field holding "\r" only when "\r" is in the line terminator: with "\n",
    # QUOTE_ALL keeps the file well-formed (a writer quirk, not a reader bug).
    quoting = csv.QUOTE_MINIMAL if terminator == "\r\n" else csv.QUOTE_ALL
    csv.writer(buffer, lineterminator=terminator, quoting=quoting).writerows([list(COLUMNS)] + [list(r) for r in rows])
    root = str(tmp_path_factory.mktemp("roundtrip"))
    path = _write(root, "index.csv", buffer.getvalue().encode("utf-8-sig" if bom else "utf-8"))
    with case_timeout("csv_tsv"):
        paths, values = read_csv_index(path, COLUMNS)
    assert paths == [resolve_path(p.strip(), root) for p, _ in rows]
    assert values == [caption.strip() for _, caption in rows]
    fuzz_support.record("csv_tsv", "roundtrip")


@st.composite
def csv_dataset(draw):
    """An index whose rows name hostile files: images (valid, mutated, junk, bombs), missing files, directories,
    a FIFO, a device, absolute paths and `..`; captions of nasty or 100k-character text."""
    files = draw(st.lists(fuzz_support.image_like_bytes(), min_size=1, max_size=4))
    hostile = ("missing.png", "subdir", "../x.png", "/", "pipe.fifo", "/dev/zero")
    targets = draw(st.lists(st.one_of(st.integers(0, len(files) - 1), st.sampled_from(hostile)),
                            min_size=1, max_size=6))
    captions = draw(st.lists(st.one_of(nasty_text(), fuzz_support.long_text()), min_size=len(targets),
                             max_size=len(targets)))
    data_format = draw(st.sampled_from(("csv", "tsv", "csvlabel")))
    return files, targets, captions, data_format


@fuzz_settings(fast=4, share=0.1)
@given(case=csv_dataset())
def test_csv_pipeline_yields_or_counts_every_row(tmp_path_factory, case):
    files, targets, captions, data_format = case
    root = str(tmp_path_factory.mktemp("csv_pipeline"))
    os.makedirs(os.path.join(root, "subdir"))
    os.mkfifo(os.path.join(root, "pipe.fifo"))  # reading it would block for ever
    for i, data in enumerate(files):
        _write(root, f"{i}.img", data)
    delimiter = "\t" if data_format == "tsv" else ","
    value_column = "label" if data_format == "csvlabel" else "caption"
    buffer = io.StringIO()
    quoting = csv.QUOTE_NONE if data_format == "tsv" else csv.QUOTE_MINIMAL
    writer = csv.writer(buffer, delimiter=delimiter, quoting=quoting, escapechar="\\" if data_format == "tsv" else None)
    writer.writerow(["filepath", value_column])
    for target, caption in zip(targets, captions):
        if data_format == "tsv":
            caption = caption.replace("\t", " ").replace("\n", " ").replace("\r", " ")
        writer.writerow([f"{target}.img" if isinstance(target, int) else target, caption])
    path = _write(root, "index.csv", buffer.getvalue().encode("utf-8"))
    with case_timeout("csv_tsv"), fuzz_support.FifoWatch([os.path.join(root, "pipe.fifo")]) as watch:
        result = fuzz_support.drain_records(path, data_format)
    fuzz_support.record_drain("csv_tsv", result)
    count, counter, error = result
    assert not watch.opened, "the reader opened a FIFO"
    if error is None:
        rows = read_csv_index(path, ("filepath", value_column), delimiter)[0]
        assert len(rows) == len(targets)
        assert count + counter.count == len(rows)
        special = sum(target in ("subdir", "/", "pipe.fifo", "/dev/zero") for target in targets)
        assert counter.reasons.get("not_a_file", 0) == special
    else:
        assert isinstance(error, ValueError), error


def test_index_rows_naming_fifos_are_counted_not_read(tmp_path):
    root = str(tmp_path)
    _write(root, "ok.png", fuzz_support.png_with_size(1, 1))
    os.mkfifo(os.path.join(root, "pipe.png"))
    index = _write(root, "index.csv", b"filepath,caption\nok.png,a cat\npipe.png,a pipe\n/dev/zero,endless\n")
    with case_timeout("csv_tsv", seconds=60), fuzz_support.FifoWatch([os.path.join(root, "pipe.png")]) as watch:
        count, counter, error = fuzz_support.drain_records(index, "csv")
    assert not watch.opened and error is None
    assert count == 1 and dict(counter.reasons) == {"not_a_file": 2}


def test_an_index_file_that_is_a_fifo_is_an_error(tmp_path):
    fifo = os.path.join(str(tmp_path), "index.csv")
    os.mkfifo(fifo)
    with fuzz_support.FifoWatch([fifo]) as watch:
        count, counter, error = fuzz_support.drain_records(fifo, "csv")
    assert not watch.opened
    assert isinstance(error, ValueError) and "not a regular file" in str(error) and fifo in str(error)

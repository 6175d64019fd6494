"""Reads CSV/TSV index files: `filepath,caption` (image-text) or `filepath,label` (image-label).

The first row is a header naming the columns. CSV uses standard quoting (captions may hold commas, quotes and line
breaks inside quotes); TSV uses no quoting [ours, as open_clip's TSV files: a field cannot hold a tab]. Relative image
paths are resolved against `image_root`, by default the directory of the index file. A malformed file raises
`DataFormatError` naming the file and line. Bytes that are not valid UTF-8 are kept as they are (decoded with
`surrogateescape`; `to_bytes` gives them back), so that one bad caption costs one record: the reader skips and counts
it as `bad_text`, as it does an empty caption (`no_text`).
"""

import csv
import io
import posixpath

import tensorflow as tf

from florence_keras.data.data_format_error import DataFormatError


def _decode_text(data):
    # surrogateescape: an invalid byte becomes a lone surrogate, so it survives parsing and `to_bytes` restores it.
    return data.decode("utf-8-sig", "surrogateescape")


def to_bytes(value):
    """The original bytes of a str read by `read_csv_index` (invalid UTF-8 included); bytes pass through."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def resolve_path(image_path, root):
    """Joins a relative path to `root`; absolute paths and URLs (`gs://...`) are kept.

    Args:
        image_path: str.
        root: str directory.

    Returns:
        str.
    """
    if "://" in image_path or posixpath.isabs(image_path) or not root:
        return image_path
    return posixpath.join(root, image_path)


def read_csv_index(path, columns, delimiter=",", image_root=None):
    """Reads selected columns of a CSV/TSV file with a header row.

    Args:
        path: str, the CSV/TSV file.
        columns: `(image_column, value_column)`, e.g. `("filepath", "caption")`.
        delimiter: `","` (quoted CSV) or `"\\t"` (TSV, no quoting).
        image_root: directory that relative image paths are relative to; default: the file's directory.

    Returns:
        `(image_paths, values)`: two lists of str, one entry per data row (blank lines are ignored).

    Raises:
        DataFormatError: missing columns, a row with the wrong number of fields, bad quoting or an empty image
            path — naming the file and line. (Invalid UTF-8 is kept, see the module docstring.)
    """
    if delimiter not in (",", "\t"):
        raise ValueError(f"`delimiter` must be ',' or '\\t'. Received: delimiter={delimiter!r}")
    with tf.io.gfile.GFile(path, "rb") as f:
        text = _decode_text(f.read())
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=True)
    root = posixpath.dirname(path) if image_root is None else image_root
    image_paths, values = [], []
    header = None
    rows = iter(reader)
    while True:
        line = reader.line_num + 1  # where the next record starts
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as error:
            raise DataFormatError(path, line, f"bad CSV syntax in the record starting here: {error}") from error
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if header is None:
            header = [name.strip() for name in row]
            missing = [name for name in columns if name not in header]
            if missing:
                raise DataFormatError(path, line, f"header lacks column(s) {missing}; it has {header}")
            image_index, value_index = header.index(columns[0]), header.index(columns[1])
            continue
        if len(row) != len(header):
            raise DataFormatError(path, line, f"expected {len(header)} fields ({header}), found {len(row)}: {row!r}")
        image_path = row[image_index].strip()
        if not image_path:
            raise DataFormatError(path, line, f"empty {columns[0]!r} field")
        image_paths.append(resolve_path(image_path, root))
        values.append(row[value_index].strip())
    if header is None:
        raise DataFormatError(path, None, "the file is empty (no header row)")
    return image_paths, values

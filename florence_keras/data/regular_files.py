"""Only regular files are read: a FIFO, socket or device named by the data would block the reader or never end.

Opening a FIFO for reading waits for a writer, for ever; `/dev/zero` never ends. TensorFlow's file reads can't be
interrupted, so such paths are refused before anything opens them: index rows (CSV/TSV/COCO) naming one are
left out and counted as `not_a_file`, and an index file or record shard that is one is an error. Only local paths
are checked (`gs://` and other remote schemes have no FIFOs); a missing file or a dangling link is not special
here (the reader reports it as `missing`). The check costs one `os.stat` per path when the pipeline is built.
"""

import os
import stat

from absl import logging

NOT_A_FILE = "not_a_file"


def is_local(path):
    """Whether `path` is a local path (no `scheme://`)."""
    return "://" not in path


def is_special_file(path):
    """True for a local path that exists and is not a regular file (FIFO, socket, device, directory).

    Args:
        path: str or bytes.

    Returns:
        bool; False for remote paths and for paths that don't exist (or can't be stat'ed).

    Example:
    >>> is_special_file("/dev/null"), is_special_file("/no/such/file"), is_special_file("gs://bucket/a.png")
    (True, False, False)
    """
    if isinstance(path, bytes):
        path = path.decode("utf-8", "surrogateescape")
    try:
        return is_local(path) and not stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):  # missing, a dangling link, a name with NUL bytes: the reader reports it
        return False


def check_regular_file(path):
    """Raises `ValueError` naming `path` if it is a local FIFO, socket, device or directory (see `is_special_file`)."""
    if is_special_file(path):
        raise ValueError(f"{path!r} is not a regular file (a FIFO, socket, device or directory); only regular "
                         "files can be read as data.")


def drop_special_files(paths, *columns, skip_counter=None):
    """Leaves out the rows whose path is a special file, counting each as `not_a_file`.

    Args:
        paths: list of str, one per row.
        *columns: lists of the same length (captions, class names, ...), filtered alike.
        skip_counter: `SkipCounter` told about each row left out; None: logged once.

    Returns:
        tuple `(paths, *columns)` of lists without those rows (the input lists when none is special).
    """
    special = [i for i, path in enumerate(paths) if is_special_file(path)]
    if not special:
        return (paths, *columns)
    for i in special:
        if skip_counter is not None:
            skip_counter.record(NOT_A_FILE, paths[i])
    if skip_counter is None:
        logging.warning("Left out %d path(s) that are not regular files, e.g. %r.", len(special), paths[special[0]])
    keep = sorted(set(range(len(paths))) - set(special))
    return tuple([column[i] for i in keep] for column in (paths, *columns))

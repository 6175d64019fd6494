"""Turns user path arguments into a sorted list of files: comma lists, globs, brace ranges, directories.

Accepted forms (mixable): a list of str; `"a.csv,b.csv"`; `"shards/train-*.tar"`;
`"shards/train-{000000..000099}.tar"` (webdataset / braceexpand style numeric ranges) and `"{a,b}.json"`; a
directory (its files with the given suffixes, not recursive). Paths may be local or any `tf.io.gfile` scheme.
"""

import re

import tensorflow as tf

from florence_keras.data.regular_files import check_regular_file

_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")
_LIST = re.compile(r"\{([^{}]*,[^{}]*)\}")


def _split_commas(text):
    parts, depth, current = [], 0, []
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def expand_braces(pattern):
    """Expands `{000..012}` numeric ranges (zero padding kept) and `{a,b}` alternatives.

    Args:
        pattern: str.

    Returns:
        list of str, in order.

    Example:
    >>> expand_braces("s-{08..10}.tar")
    ['s-08.tar', 's-09.tar', 's-10.tar']
    """
    match = _RANGE.search(pattern)
    if match:
        first, last = match.group(1), match.group(2)
        if int(last) < int(first):
            raise ValueError(f"Brace range goes backwards. Received: {pattern!r}")
        width = len(first)
        head, tail = pattern[: match.start()], pattern[match.end() :]
        return [
            expanded
            for number in range(int(first), int(last) + 1)
            for expanded in expand_braces(f"{head}{number:0{width}d}{tail}")
        ]
    match = _LIST.search(pattern)
    if match:
        head, tail = pattern[: match.start()], pattern[match.end() :]
        return [expanded for option in match.group(1).split(",") for expanded in expand_braces(head + option + tail)]
    return [pattern]


def expand_paths(paths, directory_suffixes=None):
    """Expands path arguments into files, checking that each exists.

    Args:
        paths: str (comma-separated) or list/tuple of str.
        directory_suffixes: for a directory argument, take its files ending with one of these suffixes (sorted);
            None: directories are an error.

    Returns:
        list of str, in argument order (each glob and directory sorted).

    Raises:
        FileNotFoundError: a path that doesn't exist, or a glob / directory that matches nothing.
        ValueError: a file that is a local FIFO, socket or device (reading it would block or never end).
    """
    if isinstance(paths, (str, bytes)):
        paths = paths.decode() if isinstance(paths, bytes) else paths
        arguments = _split_commas(paths)
    elif isinstance(paths, (list, tuple)):
        arguments = [str(path) for path in paths]
    else:
        raise ValueError(f"`paths` must be a str or a list of str. Received: paths={paths!r}")
    if not arguments:
        raise ValueError(f"`paths` is empty. Received: paths={paths!r}")
    files = []
    for argument in arguments:
        for pattern in expand_braces(argument):
            if any(char in pattern for char in "*?["):
                matched = sorted(tf.io.gfile.glob(pattern))
                if not matched:
                    raise FileNotFoundError(f"No file matches {pattern!r}.")
                files.extend(matched)
            elif tf.io.gfile.isdir(pattern):
                if directory_suffixes is None:
                    raise FileNotFoundError(f"Expected a file, got a directory: {pattern!r}.")
                matched = sorted(
                    name
                    for name in tf.io.gfile.listdir(pattern)
                    if name.endswith(tuple(directory_suffixes)) and not name.startswith(".")
                )
                if not matched:
                    raise FileNotFoundError(f"Directory {pattern!r} holds no file ending with {directory_suffixes}.")
                files.extend(f"{pattern.rstrip('/')}/{name}" for name in matched)
            elif tf.io.gfile.exists(pattern):
                files.append(pattern)
            else:
                raise FileNotFoundError(f"No such file: {pattern!r}.")
    for path in files:
        check_regular_file(path)
    return files

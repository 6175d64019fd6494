"""Lists an ImageFolder tree (`root/class_name/**/file`): every non-hidden file under a class directory.

Files are not filtered by extension: a non-image file inside a class directory is read, skipped and counted by
the reader rather than silently ignored. Files lying directly in `root` belong to no class and are reported once.
Symbolic links to directories are followed, but a directory already visited within a class (a link loop, or two
links to one directory) is listed once, so a loop can neither hang the listing nor repeat its files. Local FIFOs,
sockets and devices (`not_a_file`: reading a FIFO blocks for ever) and names that are not valid UTF-8 (`bad_name`)
are left out and counted.
"""

import os
import posixpath

import tensorflow as tf
from absl import logging

from florence_keras.data.regular_files import is_local
from florence_keras.data.regular_files import is_special_file


def _real_directory(path):
    """The directory a local path leads to (links resolved); a remote path (`gs://...`) is its own identity."""
    return os.path.realpath(path) if is_local(path) else path


def _utf8(name):
    """Whether a (surrogate-escaped) file name is valid UTF-8: the pipeline's paths and class names must be."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _isdir(path):
    """`os.path.isdir` for local paths: `tf.io.gfile.isdir` fails with UnicodeDecodeError on a dangling link whose
    name is not UTF-8 (TensorFlow's error message quotes the name)."""
    return os.path.isdir(path) if is_local(path) else tf.io.gfile.isdir(path)


def _walk(top):
    """`os.walk` for local paths (file names that are not UTF-8 don't break the listing), else `tf.io.gfile.walk`."""
    if is_local(top):
        return os.walk(top, followlinks=True)
    return tf.io.gfile.walk(top)


def list_image_folder(root, skip_counter=None):
    """Lists the files and class names of an ImageFolder tree.

    Args:
        root: str, a directory whose sub-directories are the classes.
        skip_counter: `SkipCounter` told about entries that are not listed: `bad_name` (a file or class name that
            is not valid UTF-8) and `not_a_file` (a FIFO, socket or device). None: logged only.

    Returns:
        `(paths, class_names, classes)`: the files and their class (directory) names, sorted by class then path,
        and the sorted list of classes.

    Raises:
        FileNotFoundError: `root` is not a directory or holds no class directory.
    """
    if not tf.io.gfile.isdir(root):
        raise FileNotFoundError(f"ImageFolder root is not a directory: {root!r}")
    names = os.listdir(root) if is_local(root) else tf.io.gfile.listdir(root)
    entries = sorted(name.rstrip("/") for name in names if not name.startswith("."))
    refused = []

    def refuse(reason, path):
        refused.append(reason)
        if skip_counter is not None:
            skip_counter.record(reason, path.encode("utf-8", "replace").decode("utf-8"))

    classes = []
    for name in entries:
        if _isdir(posixpath.join(root, name)):
            if _utf8(name):
                classes.append(name)
            else:
                refuse("bad_name", posixpath.join(root, name))
    loose = len(entries) - len(classes) - len(refused)
    if loose:
        logging.warning("ImageFolder %s: %d file(s) directly in the root belong to no class; not read.", root, loose)
    if not classes:
        raise FileNotFoundError(f"ImageFolder root {root!r} holds no class directory.")
    paths, class_names = [], []
    for class_name in classes:
        found = []
        visited = set()  # per class: a class directory may legitimately be a link to another one
        for directory, subdirectories, files in _walk(posixpath.join(root, class_name)):
            visited.add(_real_directory(directory))
            subdirectories[:] = [
                name for name in subdirectories
                if not name.startswith(".") and _real_directory(posixpath.join(directory, name)) not in visited
            ]
            visited.update(_real_directory(posixpath.join(directory, name)) for name in subdirectories)
            for name in files:
                path = posixpath.join(directory, name)
                if name.startswith("."):
                    continue
                if not _utf8(path):
                    refuse("bad_name", path)
                elif is_special_file(path):
                    refuse("not_a_file", path)
                else:
                    found.append(path)
        found.sort()
        paths.extend(found)
        class_names.extend([class_name] * len(found))
    if refused:
        logging.warning("ImageFolder %s: %d entr(ies) not listed: %s.", root, len(refused),
                        ", ".join(f"{reason}={refused.count(reason)}" for reason in sorted(set(refused))))
    return paths, class_names, classes

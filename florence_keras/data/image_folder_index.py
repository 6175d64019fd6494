"""Lists an ImageFolder tree (`root/class_name/**/file`): every non-hidden file under a class directory.

Files are not filtered by extension: a non-image file inside a class directory is read, skipped and counted by
the reader rather than silently ignored. Files lying directly in `root` belong to no class and are reported once.
"""

import posixpath

import tensorflow as tf
from absl import logging


def list_image_folder(root):
    """Lists the files and class names of an ImageFolder tree.

    Args:
        root: str, a directory whose sub-directories are the classes.

    Returns:
        `(paths, class_names, classes)`: the files and their class (directory) names, sorted by class then path,
        and the sorted list of classes.

    Raises:
        FileNotFoundError: `root` is not a directory or holds no class directory.
    """
    if not tf.io.gfile.isdir(root):
        raise FileNotFoundError(f"ImageFolder root is not a directory: {root!r}")
    entries = sorted(name.rstrip("/") for name in tf.io.gfile.listdir(root) if not name.startswith("."))
    classes = [name for name in entries if tf.io.gfile.isdir(posixpath.join(root, name))]
    loose = len(entries) - len(classes)
    if loose:
        logging.warning("ImageFolder %s: %d file(s) directly in the root belong to no class; not read.", root, loose)
    if not classes:
        raise FileNotFoundError(f"ImageFolder root {root!r} holds no class directory.")
    paths, class_names = [], []
    for class_name in classes:
        found = []
        for directory, subdirectories, files in tf.io.gfile.walk(posixpath.join(root, class_name)):
            subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
            found.extend(posixpath.join(directory, name) for name in files if not name.startswith("."))
        found.sort()
        paths.extend(found)
        class_names.extend([class_name] * len(found))
    return paths, class_names, classes

"""Lists video datasets: a class-per-folder tree of videos or frame folders, or a `filepath,caption` CSV.

A class-per-folder tree is `root/<class>/<clip>` where each clip is a video file (`VIDEO_EXTENSIONS`, decoded
with OpenCV) or a directory of frames (`FRAME_EXTENSIONS`, read in name order). Other files inside a class
directory are listed too: the decoder skips and counts what it cannot read, rather than the listing hiding it.
"""

import os

from florence_keras.data.csv_index import read_csv_index

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def list_video_folder(root):
    """The clips and class names of a class-per-folder video tree.

    Args:
        root: directory whose sub-directories are the classes; inside a class, every non-hidden file is a
            video and every directory holding frames is a clip (nested directories without frames are searched).

    Returns:
        `(paths, labels, class_names)`: clip paths sorted by class then path, their class indices (int), and the
        sorted class names.

    Raises:
        ValueError: `root` is not a directory or holds no class directory / no clip.

    Example:
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> for name in ("b/x.mp4", "a/y.avi", "a/z/0001.jpg"):
    ...     os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
    ...     open(os.path.join(root, name), "wb").close()
    >>> paths, labels, classes = list_video_folder(root)
    >>> [os.path.relpath(p, root) for p in paths], labels, classes
    (['a/y.avi', 'a/z', 'b/x.mp4'], [0, 0, 1], ['a', 'b'])
    """
    if not os.path.isdir(root):
        raise ValueError(f"`root` must be a directory of class directories. Received: {root!r}")
    class_names = sorted(name for name in os.listdir(root)
                         if not name.startswith(".") and os.path.isdir(os.path.join(root, name)))
    if not class_names:
        raise ValueError(f"{root!r} holds no class directory (expected root/<class>/<clip>).")
    paths, labels = [], []
    for label, name in enumerate(class_names):
        for clip in sorted(_clips_under(os.path.join(root, name))):
            paths.append(clip)
            labels.append(label)
    if not paths:
        raise ValueError(f"{root!r} holds no clips under its class directories {class_names}.")
    return paths, labels, class_names


def _clips_under(directory):
    """Files under `directory` are videos; a sub-directory holding frame images is one clip; others are searched."""
    clips = []
    for entry in sorted(e for e in os.listdir(directory) if not e.startswith(".")):
        path = os.path.join(directory, entry)
        if os.path.isdir(path):
            names = [n for n in os.listdir(path) if not n.startswith(".")]
            if any(n.lower().endswith(FRAME_EXTENSIONS) for n in names):
                clips.append(path)
            else:
                clips.extend(_clips_under(path))
        else:
            clips.append(path)
    return clips


def list_video_captions(csv_path, video_root=None):
    """Reads a `filepath,caption` CSV of text-video pairs (paths relative to the CSV's directory by default).

    Returns:
        `(paths, captions)` lists of str.
    """
    return read_csv_index(csv_path, ("filepath", "caption"), image_root=video_root)

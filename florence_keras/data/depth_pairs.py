"""Image-depth pairs: `image,depth` CSV files -> decoded, checked, resized arrays; bad records skipped and counted.

A pair is an image (JPEG/PNG/... decoded as the training pipeline decodes images: `decode_image_checked`) and a
depth map: a single-channel **16-bit PNG in millimetres** (0 = no measurement), or a `.npy` float array **in
metres** (read with `allow_pickle=False`; 0, negative and non-finite values = invalid). The CSV's header names the
image column `image` (or `filepath`, as the built-in scenes' `depth_{split}.csv`) and the depth column `depth`;
relative paths are relative to the CSV's folder.

A record is skipped and counted in a `SkipCounter` (reason, path) when a file is missing or not a regular file,
the image is empty / not an image / truncated / corrupt / too large, the depth file is not a 16-bit
single-channel PNG or a 2-D numeric `.npy` (`bad_depth`), its size differs from the image's (`size_mismatch`),
or it holds no valid pixel (`no_valid_depth`). Nothing bad stops a run.

The pairs are decoded once in Python and held in memory at the training size (the built-in demo: 4,000 scenes of
64×64 take 115 MB); `depth_dataset` streams them with augmentation.
"""

import io
import os
import posixpath

import cv2
import numpy as np
import tensorflow as tf

from florence_keras.data import image_decoding
from florence_keras.data import regular_files
from florence_keras.data.csv_index import read_csv_index
from florence_keras.data.csv_index import resolve_path
from florence_keras.data.data_format_error import DataFormatError
from florence_keras.data.skip_counter import SkipCounter

DEPTH_PNG_SCALE = 1000.0  # millimetres per metre
IMAGE_COLUMNS = ("image", "filepath")


class _BadRecord(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def read_depth_pairs(path, image_root=None):
    """`(image_paths, depth_paths)` of an `image,depth` (or `filepath,depth`) CSV file; see the module docstring."""
    last_error = None
    root = posixpath.dirname(path) if image_root is None else image_root
    for image_column in IMAGE_COLUMNS:
        try:
            image_paths, depth_paths = read_csv_index(path, (image_column, "depth"), image_root=image_root)
        except DataFormatError as error:
            if "header lacks" not in str(error):
                raise
            last_error = error
            continue
        for line, depth_path in enumerate(depth_paths, start=2):
            if not depth_path:
                raise DataFormatError(path, line, "empty 'depth' field")
        return image_paths, [resolve_path(depth_path, root) for depth_path in depth_paths]
    raise last_error


def _read(path):
    if regular_files.is_special_file(path):
        raise _BadRecord(regular_files.NOT_A_FILE)
    if not tf.io.gfile.exists(path):
        raise _BadRecord("missing")
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def decode_image_bytes(data, max_pixels=image_decoding.DEFAULT_MAX_PIXELS):
    """uint8 RGB `(H, W, 3)` of encoded image bytes, or `_BadRecord` with the reader's reason names."""
    try:
        image, reason = image_decoding.decode_image_checked(tf.constant(data), max_pixels=max_pixels)
    except tf.errors.InvalidArgumentError:
        raise _BadRecord(image_decoding.classify_undecodable(data)) from None
    if int(reason) != image_decoding.OK:
        raise _BadRecord(image_decoding.REASON_NAMES[int(reason)])
    return image.numpy()


def decode_depth_bytes(data, path):
    """float32 depth in metres `(H, W)` (0 = invalid) from 16-bit PNG (mm) or `.npy` (m) bytes."""
    if not data:
        raise _BadRecord("empty")
    if path.lower().endswith(".npy"):
        try:
            depth = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError):
            raise _BadRecord("bad_depth") from None
        if depth.ndim == 3 and depth.shape[-1] == 1:
            depth = depth[..., 0]
        if depth.ndim != 2 or not (np.issubdtype(depth.dtype, np.floating) or np.issubdtype(depth.dtype, np.integer)):
            raise _BadRecord("bad_depth")
        depth = depth.astype(np.float32)
        return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise _BadRecord(image_decoding.classify_undecodable(data))
    if decoded.dtype != np.uint16 or decoded.ndim != 2:
        # An 8-bit PNG would silently be read as centimetre-ish garbage: refuse it.
        raise _BadRecord("bad_depth")
    return decoded.astype(np.float32) / DEPTH_PNG_SCALE


def load_depth_record(image_path, depth_path, max_pixels=image_decoding.DEFAULT_MAX_PIXELS):
    """Decodes one pair: `(uint8 image (H, W, 3), float32 depth (H, W) in metres)`.

    Raises:
        ValueError: the pair is bad; the message is the reason (see the module docstring).
    """
    try:
        image = decode_image_bytes(_read(image_path), max_pixels=max_pixels)
        depth = decode_depth_bytes(_read(depth_path), depth_path)
        if image.shape[:2] != depth.shape:
            raise _BadRecord("size_mismatch")
        if not (depth > 0).any():
            raise _BadRecord("no_valid_depth")
    except _BadRecord as bad:
        raise ValueError(bad.reason) from None
    return image, depth


def resize_pair(image, depth, size):
    """Resizes a pair to `size × size`: the image bilinearly (antialiased, as `FlorenceDepthEstimator.predict`
    does), the depth by nearest neighbour (an invalid 0 is never blended into a valid value)."""
    if image.shape[:2] == (size, size):
        return image, depth
    image = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
    image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8).numpy()
    depth = tf.image.resize(depth[..., None], (size, size), method="nearest")[..., 0].numpy()
    return image, depth


def load_depth_pairs(paths, image_size, skip_counter=None, max_examples=None, image_root=None):
    """Reads `image,depth` CSV file(s) into arrays at `image_size`, skipping and counting bad records.

    Args:
        paths: a CSV path or a list of them.
        image_size: int, the square size of the returned arrays; None keeps the pairs' own size (all equal).
        skip_counter: a `SkipCounter` for the bad records (default: a new one, in the result).
        max_examples: optional int, stop after this many good pairs.
        image_root: folder of relative paths (default: each CSV's folder).

    Returns:
        dict: `images` uint8 `(N, S, S, 3)`, `depth` float32 `(N, S, S)` metres (0 = invalid), `sources` (the
        image paths), `skip_counter`.

    Raises:
        ValueError: no good pair at all (the message gives the skip summary).
    """
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise ValueError(f"`image_size` must be None or a positive int. Received: image_size={image_size!r}")
    counter = SkipCounter(name="depth pairs") if skip_counter is None else skip_counter
    images, depths, sources = [], [], []
    for csv_path in [paths] if isinstance(paths, (str, os.PathLike)) else list(paths):
        image_paths, depth_paths = read_depth_pairs(os.fspath(csv_path), image_root=image_root)
        for image_path, depth_path in zip(image_paths, depth_paths):
            if max_examples is not None and len(images) >= max_examples:
                break
            try:
                image, depth = load_depth_record(image_path, depth_path)
            except ValueError as bad:
                counter.record(str(bad), f"{image_path},{depth_path}")
                continue
            if image_size is not None:
                image, depth = resize_pair(image, depth, image_size)
            elif images and image.shape != images[0].shape:
                raise ValueError(f"{image_path} is {image.shape[:2]}, the first pair {images[0].shape[:2]}: pass an "
                                 "`image_size` to resize pairs of different sizes.")
            images.append(image)
            depths.append(depth)
            sources.append(image_path)
    if counter.count:
        counter.log_summary()
    if not images:
        raise ValueError(f"No readable image-depth pair in {paths}. {counter.summary()}")
    return {"images": np.stack(images), "depth": np.stack(depths).astype(np.float32), "sources": sources,
            "skip_counter": counter}

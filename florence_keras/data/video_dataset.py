"""`tf.data` pipelines of video clips: decoding with skips counted, clip sampling, 3-D augmentation, views.

Every frame of a clip gets the same crop and the same flip (a clip is augmented as one 3-D volume). A horizontal
flip mirrors motion: "moving left" becomes "moving right". `flip_label_map` finds such class pairs in the class
names; the pipeline then swaps the label of a flipped clip (and the words left/right in a flipped clip's caption).
Classes that name a side with no mirrored class (say "turning left" without "turning right") make a flip
impossible to label, and flipping is turned off (logged).
"""

import re

import numpy as np
import tensorflow as tf
from absl import logging

from florence_keras.data.skip_counter import SkipCounter
from florence_keras.data.video_decoding import VideoDecodeError
from florence_keras.data.video_decoding import decode_clip

_SIDE_WORD = re.compile(r"(?<![a-z])(left|right)(?![a-z])", re.IGNORECASE)


def _mirror_name(name):
    return _SIDE_WORD.sub(lambda m: {"left": "right", "right": "left"}[m.group(1).lower()], name)


def flip_label_map(class_names):
    """The class each class becomes under a horizontal flip, or None when some side-naming class has no mirror.

    Example:
    >>> flip_label_map(["moving down", "moving left", "moving right", "moving up"])
    [0, 2, 1, 3]
    >>> flip_label_map(["turn_left", "stop"]) is None
    True
    """
    index = {name: i for i, name in enumerate(class_names)}
    mapping = []
    for name in class_names:
        partner = _mirror_name(name)
        if partner not in index:
            return None
        mapping.append(index[partner])
    return mapping


def _mirror_captions(captions):
    captions = tf.strings.regex_replace(captions, r"\bleft\b", "\x01")
    captions = tf.strings.regex_replace(captions, r"\bright\b", "left")
    return tf.strings.regex_replace(captions, "\x01", "right")


def view_positions(num_views, sampling):
    """Temporal positions in [0, 1] of `num_views` evenly spread views (one view: the middle)."""
    if num_views == 1:
        return [0.5]
    if sampling == "uniform":
        return [(k + 0.5) / num_views for k in range(num_views)]
    return [k / (num_views - 1) for k in range(num_views)]


def _box(top, left, side, height, width):
    """A square `side` crop at (`top`, `left`) in `crop_and_resize`'s coordinates (0 and 1 are the first and last
    pixel centres), so that a crop resized to its own size is the exact pixels."""
    return tf.stack([top / tf.maximum(height - 1.0, 1.0), left / tf.maximum(width - 1.0, 1.0),
                     (top + side - 1.0) / tf.maximum(height - 1.0, 1.0),
                     (left + side - 1.0) / tf.maximum(width - 1.0, 1.0)])


def _crop_boxes_eval(height, width, num_views):
    """Square boxes of the short side at the start / middle / end of the long side."""
    height, width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    short = tf.minimum(height, width)
    fractions = [0.5] if num_views == 1 else [k / (num_views - 1) for k in range(num_views)]
    return [_box(tf.round((height - short) * f), tf.round((width - short) * f), short, height, width)
            for f in fractions]


def _crop_resize(frames, box, image_size):
    frames = tf.cast(frames, tf.float32)
    count = tf.shape(frames)[0]
    boxes = tf.tile(box[None], [count, 1])
    out = tf.image.crop_and_resize(frames, boxes, tf.range(count), (image_size, image_size), method="bilinear")
    return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)


def _random_box(height, width, seed, min_scale):
    """A random square crop of `sqrt(U(min_scale, 1))` of the short side, anywhere in the frame."""
    height, width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    u = tf.random.stateless_uniform((3,), seed, 0.0, 1.0)
    side = tf.maximum(tf.round(tf.minimum(height, width) * tf.sqrt(min_scale + (1.0 - min_scale) * u[0])), 1.0)
    return _box(tf.floor((height - side) * u[1]), tf.floor((width - side) * u[2]), side, height, width)


def video_dataset(paths, labels=None, captions=None, *, num_frames=8, image_size=64, batch_size=8, training=True,
                  sampling="dense", stride=1, temporal_views=1, spatial_views=1, seed=0, flip=True,
                  class_names=None, min_scale=0.5, max_side=None, skip_counter=None, repeat=None,
                  drop_remainder=None, num_parallel_calls=2):
    """Batches of clips (uint8) with their labels and/or captions.

    Args:
        paths: list of clip paths (video files or frame folders).
        labels: optional list of int class indices.
        captions: optional list of str captions.
        num_frames, stride, sampling: the clip sampling (`video_decoding.sample_frame_indices`).
        image_size: int, the square frame side of the output.
        batch_size: int.
        training: random temporal position, random square crop (`min_scale` of the short side's area up to all
            of it) and horizontal flip, the same for every frame; shuffled and repeated. Otherwise views.
        temporal_views, spatial_views: evaluation views per clip: temporal positions spread over the video, and
            square crops of the short side at the start / middle / end of the long side.
        seed: int, the shuffle and augmentation seed (deterministic).
        flip: bool, horizontal flips in training; labels of mirrored classes are swapped (`flip_label_map` on
            `class_names`) and left/right swapped in captions; turned off when a class cannot be mirrored.
        class_names: list of str (needed to flip labelled data).
        max_side: optional int, frames are shrunk to this short side when decoded (default `2 * image_size`).
        skip_counter: a `SkipCounter` for clips that could not be decoded (they are left out).
        repeat: bool, default `training`.
        drop_remainder: bool, default `training`.
        num_parallel_calls: decoding parallelism.

    Returns:
        `tf.data.Dataset` of dicts: `"videos"` uint8 `(B, T, S, S, 3)` in training, `(B, V, T, S, S, 3)` in
        evaluation (`V = temporal_views * spatial_views`, temporal-major); `"labels"` int64 `(B,)` and
        `"captions"` string `(B,)` when given; `"index"` int64 `(B,)`, the clip's position in `paths`.
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("`paths` is empty: no clips to read.")
    for name, values in (("labels", labels), ("captions", captions)):
        if values is not None and len(values) != len(paths):
            raise ValueError(f"`{name}` needs one entry per path ({len(paths)}). Received {len(values)}.")
    if temporal_views < 1 or spatial_views < 1:
        raise ValueError(f"Views must be >= 1. Received: temporal_views={temporal_views}, "
                         f"spatial_views={spatial_views}")
    skip_counter = skip_counter if skip_counter is not None else SkipCounter(name="video clips")
    repeat = training if repeat is None else repeat
    drop_remainder = training if drop_remainder is None else drop_remainder
    max_side = int(max_side or 2 * image_size)
    mirror = None
    if training and flip:
        if labels is not None:
            mirror = flip_label_map(class_names) if class_names is not None else None
            if mirror is None:
                logging.warning("Horizontal flips are off: class names %s cannot be mirrored (a flip turns "
                                "'left' motion into 'right').", class_names)
                flip = False
        # captions alone: left/right are swapped in the text

    def decode(path, position, record):
        try:
            frames = decode_clip(path, num_frames, stride, sampling, float(position), max_side)
            return frames, True
        except VideoDecodeError as error:
            reason = error.reason
        except Exception as error:  # noqa: BLE001 — any decoder failure is a counted skip, never a crash
            reason = f"corrupt ({type(error).__name__})"
        if record:  # a clip read as several temporal views counts once
            skip_counter.record(reason, path)
        return np.zeros((num_frames, 1, 1, 3), np.uint8), False

    def decode_tf(path, position, record=True):
        frames, ok = tf.numpy_function(decode, [path, position, record], [tf.uint8, tf.bool], stateful=False)
        frames.set_shape((num_frames, None, None, 3))
        ok.set_shape(())
        return frames, ok

    elements = {"path": paths, "index": np.arange(len(paths), dtype=np.int64)}
    if labels is not None:
        elements["labels"] = np.asarray(labels, np.int64)
    if captions is not None:
        elements["captions"] = [str(c) for c in captions]
    ds = tf.data.Dataset.from_tensor_slices(elements)
    if training:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    mirror_table = None if mirror is None else tf.constant(mirror, tf.int64)

    def train_map(element, pair):
        key = tf.stack([tf.cast(seed, tf.int64), pair])
        position = tf.random.stateless_uniform((), key, 0.0, 1.0)
        frames, ok = decode_tf(element["path"], position)
        shape = tf.shape(frames)
        box = _random_box(shape[1], shape[2], key + 1, min_scale)
        frames = _crop_resize(frames, box, image_size)
        out = {k: v for k, v in element.items() if k != "path"}
        if flip:
            flipped = tf.random.stateless_uniform((), key + 2) < 0.5
            frames = tf.cond(flipped, lambda: tf.reverse(frames, axis=[2]), lambda: frames)
            if mirror_table is not None:
                out["labels"] = tf.where(flipped, tf.gather(mirror_table, out["labels"]), out["labels"])
            if "captions" in out:
                out["captions"] = tf.where(flipped, _mirror_captions(out["captions"]), out["captions"])
        out["videos"] = frames
        return out, ok

    positions = view_positions(temporal_views, sampling)

    def eval_map(element):
        views, oks = [], []
        for view, position in enumerate(positions):
            frames, ok = decode_tf(element["path"], tf.constant(position, tf.float64), view == 0)
            shape = tf.shape(frames)
            for box in _crop_boxes_eval(shape[1], shape[2], spatial_views):
                views.append(_crop_resize(frames, box, image_size))
            oks.append(ok)
        out = {k: v for k, v in element.items() if k != "path"}
        out["videos"] = tf.stack(views)
        return out, tf.reduce_all(tf.stack(oks))

    if training:
        counters = tf.data.Dataset.range(0, 2**62, 3)  # a distinct stateless key per example
        ds = tf.data.Dataset.zip((ds, counters)).map(train_map, num_parallel_calls=num_parallel_calls,
                                                       deterministic=True)
    else:
        ds = ds.map(eval_map, num_parallel_calls=num_parallel_calls, deterministic=True)
    def decoded(element, ok):
        del element
        return ok

    def drop_flag(element, ok):
        del ok
        return element

    ds = ds.filter(decoded).map(drop_flag)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(2)

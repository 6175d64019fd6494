"""Converts any supported image-text format to resized TFRecord shards (the library side of recipes/prepare_data.py).

Output shard `k` of `n` holds the examples that input pipeline `k` of `n` reads (`load_image_records` sharding: by
input file when there are at least `n` files, else every `n`-th example), so shards can be written independently,
by several processes (`shard_indices`) or machines. Each shard is written to a temporary file and renamed when
complete, then a small JSON sidecar records its counts; a rerun skips shards that have both — the conversion is
resumable. Images whose shorter side exceeds `image_size` are resized (aspect kept) and re-encoded as JPEG; other
JPEGs are copied byte for byte.
"""

import json
import os

import tensorflow as tf
from absl import logging

from florence_keras.data import image_transforms
from florence_keras.data.image_decoding import DEFAULT_MAX_PIXELS
from florence_keras.data.image_records import load_image_records
from florence_keras.data.skip_counter import SkipCounter
from florence_keras.data.tfrecord_example import make_image_text_example


def shard_path(output_dir, prefix, index, num_shards):
    """Path of output shard `index`: `{output_dir}/{prefix}-00003-of-00008.tfrecord`."""
    return os.path.join(output_dir, f"{prefix}-{index:05d}-of-{num_shards:05d}.tfrecord")


def _sidecar(path):
    return path + ".json"


def _read_sidecar(path):
    if not (tf.io.gfile.exists(path) and tf.io.gfile.exists(_sidecar(path))):
        return None
    try:
        with tf.io.gfile.GFile(_sidecar(path)) as f:
            info = json.load(f)
    except (ValueError, OSError):
        return None
    return info if {"records", "skipped"} <= set(info) else None


def _prepared(records, image_size, jpeg_quality, num_parallel_calls):
    """Resizes (shorter side <= image_size) and re-encodes where needed; keeps JPEG bytes otherwise."""

    def prepare(item):
        image = item["images"]
        resized = tf.constant(False)
        if image_size:
            image, resized = image_transforms.resize_shorter_side(image, image_size)
        is_jpeg = tf.equal(tf.strings.substr(item["encoded"], 0, 3), b"\xff\xd8\xff")
        encoded = tf.cond(
            tf.logical_and(is_jpeg, tf.logical_not(resized)),
            lambda: item["encoded"],
            lambda: tf.io.encode_jpeg(image, quality=jpeg_quality),
        )
        return {"encoded": encoded, "texts": item["texts"], "class_names": item["class_names"]}

    prepare = tf.autograph.experimental.do_not_convert(prepare)  # plain TF code: skip AutoGraph, build faster
    return records.map(prepare, num_parallel_calls=num_parallel_calls, deterministic=True).prefetch(8)


def write_tfrecord_shards(paths, data_format, output_dir, num_shards=8, image_size=256, jpeg_quality=95,
                          prefix="data", shard_indices=None, max_image_pixels=DEFAULT_MAX_PIXELS, image_root=None,
                          image_key=None, text_key=None, class_names=None, num_parallel_calls=tf.data.AUTOTUNE,
                          progress=True):
    """Converts image-text (or image-label) data to TFRecord shards, resumably.

    Args:
        paths: input paths, as for `load_image_text_dataset`.
        data_format: `csv`, `tsv`, `csvlabel`, `coco`, `imagefolder`, `wds` or `tfrecord`.
        output_dir: str, created if needed.
        num_shards: int >= 1, output shards.
        image_size: resize images whose shorter side is larger to this shorter side; 0 or None keeps sizes.
        jpeg_quality: JPEG quality of re-encoded images.
        prefix: shard file name prefix.
        shard_indices: which shards this call writes (default all); others are left to other processes.
        max_image_pixels: refuse images whose header declares more pixels.
        image_root, image_key, text_key, class_names: passed to the reader (see `load_image_records`).
        num_parallel_calls: parallelism of decoding, resizing and encoding.
        progress: show a progress bar.

    Returns:
        dict: `shards` (paths of this call's shards), `written` (records in them, including shards completed by an
        earlier run), `skipped` (examples skipped), `reasons` (reason -> count), `resumed` (shards skipped
        because an earlier run completed them).
    """
    if not isinstance(num_shards, int) or num_shards < 1:
        raise ValueError(f"`num_shards` must be an int >= 1. Received: num_shards={num_shards!r}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 0):
        raise ValueError(f"`image_size` must be an int >= 0 or None. Received: image_size={image_size!r}")
    indices = list(range(num_shards)) if shard_indices is None else sorted(set(shard_indices))
    bad = [index for index in indices if not isinstance(index, int) or not 0 <= index < num_shards]
    if bad:
        raise ValueError(f"`shard_indices` must lie in [0, {num_shards}). Received: {bad}")
    tf.io.gfile.makedirs(output_dir)
    report = {"shards": [], "written": 0, "skipped": 0, "reasons": {}, "resumed": 0}
    bar = None
    if progress:
        from tqdm import tqdm  # local: only for the progress bar

        bar = tqdm(desc=f"{prefix} shards", unit="img")
    try:
        for index in indices:
            path = shard_path(output_dir, prefix, index, num_shards)
            report["shards"].append(path)
            info = _read_sidecar(path)
            if info is None:
                info = _write_shard(path, index, num_shards, paths, data_format, image_size, jpeg_quality,
                                    max_image_pixels, image_root, image_key, text_key, class_names,
                                    num_parallel_calls, bar)
            else:
                report["resumed"] += 1
                logging.info("Shard %s already complete (%d records); skipped.", path, info["records"])
            report["written"] += info["records"]
            report["skipped"] += info["skipped"]
            for reason, count in info.get("reasons", {}).items():
                report["reasons"][reason] = report["reasons"].get(reason, 0) + count
    finally:
        if bar is not None:
            bar.close()
    logging.info("Wrote %d records in %d shard(s) to %s (%d resumed); skipped %d unreadable example(s) %s.",
                 report["written"], len(indices), output_dir, report["resumed"], report["skipped"], report["reasons"])
    return report


def _write_shard(path, index, num_shards, paths, data_format, image_size, jpeg_quality, max_image_pixels,
                 image_root, image_key, text_key, class_names, num_parallel_calls, bar):
    counter = SkipCounter(name=os.path.basename(path))
    records = load_image_records(
        paths, data_format, training=False,
        input_context=tf.distribute.InputContext(num_input_pipelines=num_shards, input_pipeline_id=index),
        skip_counter=counter, max_image_pixels=max_image_pixels, image_root=image_root, image_key=image_key,
        text_key=text_key, class_names=class_names, keep_encoded=True, num_parallel_calls=num_parallel_calls,
        log_skips_each_epoch=False,
    )
    for stale in tf.io.gfile.glob(f"{path}.tmp-*"):  # left by an interrupted run
        tf.io.gfile.remove(stale)
    temporary = f"{path}.tmp-{os.getpid()}"
    count = 0
    with tf.io.TFRecordWriter(temporary) as writer:
        for item in _prepared(records, image_size, jpeg_quality, num_parallel_calls):
            writer.write(make_image_text_example(
                item["encoded"].numpy(),
                caption=item["texts"].numpy().decode("utf-8"),
                class_name=item["class_names"].numpy().decode("utf-8"),
            ))
            count += 1
            if bar is not None:
                bar.update(1)
    tf.io.gfile.rename(temporary, path, overwrite=True)
    info = {"records": count, "skipped": counter.count, "reasons": dict(counter.reasons),
            "first_skipped": counter.first_sources}
    with tf.io.gfile.GFile(_sidecar(path) + ".tmp", "w") as f:
        json.dump(info, f)
    tf.io.gfile.rename(_sidecar(path) + ".tmp", _sidecar(path), overwrite=True)
    if counter.count:
        counter.log_summary()
    return info

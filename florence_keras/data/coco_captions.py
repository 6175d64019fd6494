"""COCO captions for captioning: images with all their reference captions; bad records skipped and counted.

Reads the COCO captions JSON layout (`captions_train2017.json`: `{"images": [{"id", "file_name", ...}],
"annotations": [{"image_id", "caption", ...}]}`; `file_name` relative to `image_root`, default the JSON file's
folder). Unlike `coco_captions_index.read_coco_captions` (one image-text pair per annotation, strict), this groups
the captions of each image (the references the caption metrics compare against) and never stops on a bad record:

* an `images` entry without an int/str `id` or a str `file_name`, or with a duplicate id: `bad_image_entry`;
* an annotation that is not an object with a str `caption`: `bad_annotation`; an empty caption: `empty_caption`;
  an `image_id` not in `images`: `unknown_image`;
* an image with no caption left: `no_caption`;
* an image file missing, not a regular file, empty, truncated, corrupt, not an image or too large: the image
  reader's reason (`missing`, `truncated`, ...).

Each is counted in a `SkipCounter` (reason, source). A file that is not JSON or has no `images` / `annotations`
list raises `DataFormatError` naming the file and line. Images are decoded once and held in memory at the training
size (whole-image bilinear resize, antialiased: what `FlorenceCaptioner.generate` does).
"""

import collections
import os
import posixpath

import numpy as np
import tensorflow as tf

from florence_keras.data import image_decoding
from florence_keras.data import regular_files
from florence_keras.data.coco_captions_index import load_json
from florence_keras.data.csv_index import resolve_path
from florence_keras.data.data_format_error import DataFormatError
from florence_keras.data.skip_counter import SkipCounter


def _is_id(value):
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def read_caption_records(path, image_root=None, skip_counter=None):
    """The images of a COCO captions file with their captions, in `images` order.

    Args:
        path: str, the JSON file.
        image_root: folder of the `file_name`s (default: the JSON file's folder).
        skip_counter: a `SkipCounter` for bad records (default: a new one).

    Returns:
        list of dicts `{"image_id", "path", "captions": [str, ...]}` (captions in annotation order, stripped).

    Raises:
        DataFormatError: not JSON, or no `images` / `annotations` list.
    """
    counter = SkipCounter(name="COCO captions") if skip_counter is None else skip_counter
    document, _ = load_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise DataFormatError(path, 1, "expected a JSON object with an 'images' list")
    if not isinstance(document.get("annotations"), list):
        raise DataFormatError(path, 1, "expected a JSON object with an 'annotations' list")
    root = posixpath.dirname(path) if image_root is None else image_root
    files = collections.OrderedDict()
    for index, image in enumerate(document["images"]):
        if (not isinstance(image, dict) or not _is_id(image.get("id")) or not isinstance(image.get("file_name"), str)
                or not image["file_name"] or image["id"] in files):
            counter.record("bad_image_entry", f"{path}:images[{index}]")
            continue
        files[image["id"]] = image["file_name"]
    captions = collections.defaultdict(list)
    for index, annotation in enumerate(document["annotations"]):
        source = f"{path}:annotations[{index}]"
        if not isinstance(annotation, dict) or not isinstance(annotation.get("caption"), str):
            counter.record("bad_annotation", source)
        elif not _is_id(annotation.get("image_id")) or annotation["image_id"] not in files:
            counter.record("unknown_image", source)
        elif not annotation["caption"].strip():
            counter.record("empty_caption", source)
        else:
            captions[annotation["image_id"]].append(" ".join(annotation["caption"].split()))
    records = []
    for image_id, file_name in files.items():
        if not captions[image_id]:
            counter.record("no_caption", f"{path}:image {image_id!r}")
            continue
        records.append({"image_id": image_id, "path": resolve_path(file_name, root), "captions": captions[image_id]})
    return records


def decode_image_file(path, max_pixels=image_decoding.DEFAULT_MAX_PIXELS):
    """uint8 RGB `(H, W, 3)` of an image file; raises `ValueError(reason)` for a bad file (reason names as the
    image reader's: `missing`, `not_a_file`, `empty`, `truncated`, `corrupt`, `not_an_image`, ...)."""
    if regular_files.is_special_file(path):
        raise ValueError(regular_files.NOT_A_FILE)
    if not tf.io.gfile.exists(path):
        raise ValueError("missing")
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    try:
        image, reason = image_decoding.decode_image_checked(tf.constant(data), max_pixels=max_pixels)
    except tf.errors.InvalidArgumentError:
        raise ValueError(image_decoding.classify_undecodable(data)) from None
    if int(reason) != image_decoding.OK:
        raise ValueError(image_decoding.REASON_NAMES[int(reason)])
    return image.numpy()


def resize_image(image, size):
    """uint8 `(size, size, 3)`: whole-image bilinear resize (antialiased), rounded."""
    if image.shape[:2] == (size, size):
        return image
    resized = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()


def load_caption_data(paths, image_size, image_root=None, max_images=None, skip_counter=None, verbose=True):
    """Reads COCO captions file(s) into memory: images at `image_size` and their captions.

    Args:
        paths: a JSON path or a list of them.
        image_size: int, the square size of the returned images.
        image_root: folder of the images (default: each JSON file's folder).
        max_images: optional int, stop after this many good images.
        skip_counter: a `SkipCounter` (default: a new one, in the result).
        verbose: show a progress bar while decoding.

    Returns:
        dict: `images` uint8 `(N, S, S, 3)`, `image_ids` (list), `captions` (list of lists of str), `sources`
        (image paths), `skip_counter`.

    Raises:
        ValueError: no good image at all (the message gives the skip summary).
    """
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"`image_size` must be a positive int. Received: image_size={image_size!r}")
    counter = SkipCounter(name="COCO captions") if skip_counter is None else skip_counter
    records = []
    for path in [paths] if isinstance(paths, (str, os.PathLike)) else list(paths):
        records.extend(read_caption_records(os.fspath(path), image_root=image_root, skip_counter=counter))
    from tqdm import tqdm

    images, image_ids, captions, sources = [], [], [], []
    for record in tqdm(records, desc="decoding images", unit="image", disable=not verbose, mininterval=2.0):
        if max_images is not None and len(images) >= max_images:
            break
        try:
            image = decode_image_file(record["path"])
        except ValueError as bad:
            counter.record(str(bad), record["path"])
            continue
        images.append(resize_image(image, image_size))
        image_ids.append(record["image_id"])
        captions.append(record["captions"])
        sources.append(record["path"])
    if counter.count:
        counter.log_summary()
    if not images:
        raise ValueError(f"No usable captioned image in {paths}. {counter.summary()}")
    return {"images": np.stack(images), "image_ids": image_ids, "captions": captions, "sources": sources,
            "skip_counter": counter}

"""Evaluation data from disk to cached numpy features, for the evaluation recipes.

Reading uses the toolkit's readers (`florence_keras.data.image_records.load_image_records`: every on-disk
format, bad images skipped and counted) and the evaluation transform (resize the shorter side, centre crop:
`florence_keras.data.image_transforms.resize_center_crop`). Encoding goes through `features.encode_image_dataset`
with a progress bar, and the result is cached on disk keyed by the preset, the data, the split and the settings
(`features.feature_cache_key`), so a linear-probe sweep or a second run does not re-encode.
"""

import hashlib
import logging
import os

import numpy as np

from florence_keras.evaluation import _checks
from florence_keras.evaluation import features as features_lib

# Side of the thumbnails kept for retrieval grids.
THUMBNAIL_SIZE = 64


def model_image_size(clip):
    """The square input side of a `FlorenceCLIP`'s image converter."""
    height, width = clip.preprocessor.image_converter.image_size
    return int(max(height, width))


def preset_cache_id(preset):
    """A cache identity for a preset, or None when its features must not be cached.

    Architecture presets (`florence_tiny`, ...) are randomly initialised on every load, so their features are
    never cached. A directory (or a registered trained preset) is identified by its path and `path_fingerprint`;
    a remote handle by its string.
    """
    from florence_keras.models import preset_registry

    resolved = preset_registry.resolve(preset)
    if resolved.kind == "architecture":
        return None
    path = resolved.path
    if os.path.isdir(path):
        return f"{os.path.abspath(path)}#{features_lib.path_fingerprint(path)}"
    return str(path)


def data_cache_id(paths):
    """Identity of data paths (comma-separated str or list): local files/dirs are fingerprinted."""
    if isinstance(paths, str):
        paths = [p.strip() for p in paths.split(",") if p.strip()]
    ids = []
    for path in paths:
        path = os.fspath(path)
        ids.append(f"{os.path.abspath(path)}#{features_lib.path_fingerprint(path)}" if os.path.exists(path) else path)
    return ids


def eval_image_dataset(paths, data_format, image_size, batch_size=32, max_examples=None, **reader_kwargs):
    """A batched, ordered `tf.data.Dataset` of evaluation images with their texts, class names and sources.

    Args:
        paths: data paths (see `load_image_records`).
        data_format: one of `florence_keras.data.image_records.DATA_FORMATS`.
        image_size: int, the side of the centre crop.
        batch_size: int.
        max_examples: read at most this many examples (tiny runs); None reads all.
        **reader_kwargs: passed to `load_image_records` (`image_root`, `image_key`, `text_key`, `class_names`,
            `skip_counter`, ...).

    Returns:
        `tf.data.Dataset` of dicts with `images` uint8 `[B, S, S, 3]`, `texts`, `class_names`, `sources`.
    """
    import tensorflow as tf

    from florence_keras.data import image_records
    from florence_keras.data import image_transforms

    dataset = image_records.load_image_records(
        paths, data_format, training=False, log_skips_each_epoch=False, **reader_kwargs
    )
    if max_examples is not None:
        dataset = dataset.take(int(max_examples))

    def transform(example):
        return {
            "images": image_transforms.resize_center_crop(example["images"], image_size),
            "texts": example["texts"],
            "class_names": example["class_names"],
            "sources": example["sources"],
        }

    return dataset.map(transform, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(2)


def _listed_batches(paths, data_format, batch_size, max_examples, reader_kwargs):
    """The progress bar's total: batches of the examples the data lists (None for shard formats)."""
    from florence_keras.data import image_records

    keys = ("image_root", "image_key", "text_key", "class_names")
    listed = image_records.count_listed_examples(paths, data_format, **{k: reader_kwargs[k] for k in keys
                                                                         if k in reader_kwargs})
    if listed is None:
        return None
    if max_examples is not None:
        listed = min(listed, int(max_examples))
    return -(-listed // batch_size) or None


def _skip_counter():
    from florence_keras.data.skip_counter import SkipCounter

    return SkipCounter(name="evaluation data")


def _cache_key(preset, paths, data_format, split, image_size, max_examples, kind, reader_kwargs):
    preset_id = preset_cache_id(preset)
    if preset_id is None:
        return None
    return features_lib.feature_cache_key(
        preset=preset_id,
        data=data_cache_id(paths),
        data_format=data_format,
        split=split,
        image_size=image_size,
        max_examples=max_examples,
        kind=kind,
        reader={k: v for k, v in sorted(reader_kwargs.items()) if isinstance(v, (str, int, float, list, tuple))},
    )


def encode_labelled_images(clip, preset, paths, data_format, split="test", batch_size=32, cache_dir=None,
                           max_examples=None, verbose=True, **reader_kwargs):
    """Image features and class names of image-label data (ImageFolder, `csvlabel`, TFRecord with classes).

    Args:
        clip: a `FlorenceCLIP` (its `encode_images` is used).
        preset: the preset it was loaded from (for the cache key).
        paths, data_format, **reader_kwargs: the data (see `eval_image_dataset`).
        split: a name for the cache key ("train", "test", ...).
        batch_size, max_examples: see `eval_image_dataset`.
        cache_dir: feature cache directory, or None.
        verbose: progress bar.

    Returns:
        dict: `features` float32 `[N, D]`, `class_names` str `[N]`, `sources` str `[N]`, and `num_skipped`
        (int array `[]`: examples the reader could not decode). Raises ValueError when the data carry no class.
    """
    image_size = model_image_size(clip)

    def compute():
        counter = _skip_counter()
        dataset = eval_image_dataset(paths, data_format, image_size, batch_size, max_examples,
                                     skip_counter=counter, **reader_kwargs)
        encoded = features_lib.encode_image_dataset(
            clip.encode_images, dataset, keep_keys=("class_names", "sources"), verbose=verbose,
            num_batches=_listed_batches(paths, data_format, batch_size, max_examples, reader_kwargs) if verbose
            else None,
        )
        encoded["num_skipped"] = np.array(counter.count, dtype=np.int64)
        if counter.count:
            logging.warning("%s", counter.summary())
        return encoded

    key = _cache_key(preset, paths, data_format, split, image_size, max_examples, "labelled", reader_kwargs)
    result = features_lib.load_or_compute_features(cache_dir if key else None, key or "none", compute)
    if np.any(result["class_names"] == ""):
        missing = int(np.sum(result["class_names"] == ""))
        raise ValueError(
            f"{missing} of {len(result['class_names'])} examples of {paths!r} have no class name; this evaluation "
            f"needs image-label data (data_format imagefolder, csvlabel, or tfrecord with image/class/text). "
            f"Received: data_format={data_format!r}"
        )
    return result


def _thumbnail(images):
    import tensorflow as tf

    resized = tf.image.resize(images, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), antialias=True)
    return np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)


def encode_captioned_images(clip, preset, paths, data_format, split="test", batch_size=32, cache_dir=None,
                            max_examples=None, verbose=True, **reader_kwargs):
    """Features of each distinct image and all its captions (COCO captions, csv/tsv, webdataset, TFRecord).

    Images are identified by their source (the file path, or `shard:key`); each distinct image is encoded once
    however many captions it has. Examples with an empty caption are dropped (and counted).

    Returns:
        dict: `image_features` float32 `[I, D]`, `image_sources` str `[I]`, `thumbnails` uint8
        `[I, 64, 64, 3]` (for result grids), `captions` str `[T]`, `text_to_image` int64 `[T]`,
        `num_skipped` and `num_empty_captions` (int arrays `[]`).
    """
    image_size = model_image_size(clip)

    def compute():
        counter = _skip_counter()
        dataset = eval_image_dataset(paths, data_format, image_size, batch_size, max_examples,
                                     skip_counter=counter, **reader_kwargs)
        index, image_features, thumbnails, sources = {}, [], [], []
        captions, text_to_image, empty = [], [], 0
        target = _listed_batches(paths, data_format, batch_size, max_examples, reader_kwargs) if verbose else None
        progbar = features_lib.progress_bar(target, verbose, unit_name="batch")
        step = -1
        for step, batch in enumerate(dataset):
            batch_sources = [s.decode("utf-8") for s in batch["sources"].numpy()]
            batch_texts = [t.decode("utf-8") for t in batch["texts"].numpy()]
            new_rows, new_sources = [], set()
            for row, source in enumerate(batch_sources):
                if source not in index and source not in new_sources:
                    new_rows.append(row)
                    new_sources.add(source)
            if new_rows:
                images = batch["images"].numpy()[new_rows]
                encoded = _checks.to_numpy(clip.encode_images(images)).astype(np.float32)
                for row in new_rows:
                    index[batch_sources[row]] = len(sources)
                    sources.append(batch_sources[row])
                image_features.append(encoded)
                thumbnails.append(_thumbnail(images))
            for source, text in zip(batch_sources, batch_texts):
                if not text.strip():
                    empty += 1
                    continue
                captions.append(text)
                text_to_image.append(index[source])
            progbar.update(step + 1)
        if not sources:
            raise ValueError(f"No image could be read from {paths!r} (data_format={data_format!r}).")
        features_lib.finish_progress_bar(progbar, step + 1)
        if counter.count:
            logging.warning("%s", counter.summary())
        # Images whose captions were all empty cannot be scored image->text: drop them and re-index.
        text_to_image = np.array(text_to_image, dtype=np.int64)
        has_caption = np.bincount(text_to_image, minlength=len(sources)) > 0
        new_index = np.cumsum(has_caption) - 1
        return {
            "image_features": np.concatenate(image_features)[has_caption],
            "image_sources": np.array(sources)[has_caption],
            "thumbnails": np.concatenate(thumbnails)[has_caption],
            "captions": np.array(captions, dtype=str),
            "text_to_image": new_index[text_to_image].astype(np.int64),
            "num_skipped": np.array(counter.count, dtype=np.int64),
            "num_empty_captions": np.array(empty, dtype=np.int64),
            "num_images_without_caption": np.array(int(np.sum(~has_caption)), dtype=np.int64),
        }

    key = _cache_key(preset, paths, data_format, split, image_size, max_examples, "captioned", reader_kwargs)
    result = features_lib.load_or_compute_features(cache_dir if key else None, key or "none", compute)
    if result["captions"].size == 0:
        raise ValueError(
            f"No example of {paths!r} has a caption; retrieval needs image-text data (data_format coco, csv, tsv, "
            f"wds or tfrecord with captions). Received: data_format={data_format!r}"
        )
    return result


def encode_texts_cached(clip, preset, texts, batch_size=256, cache_dir=None, verbose=True):
    """`features.encode_texts_in_batches(clip.encode_texts, texts)`, cached by preset and the texts themselves.

    Returns:
        float32 `[len(texts), D]`.
    """
    texts = [str(text) for text in texts]
    preset_id = preset_cache_id(preset)
    key = None
    if preset_id is not None:
        digest = hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()
        key = features_lib.feature_cache_key(preset=preset_id, texts=digest, count=len(texts), kind="texts")

    def compute():
        return {"features": features_lib.encode_texts_in_batches(clip.encode_texts, texts, batch_size, verbose)}

    return features_lib.load_or_compute_features(cache_dir if key else None, key or "none", compute)["features"]

"""Encoding datasets into numpy feature arrays, with an on-disk cache.

A linear-probe sweep or a few-shot run re-reads the same features many times; encoding is the slow part. The
cache stores plain arrays with `np.savez` (no pickle; loaded with `allow_pickle=False`) under a name that is a
hash of what determines the features: the preset, the data and the split (see `feature_cache_key`).
"""

import hashlib
import json
import logging
import os
import zipfile

import numpy as np

from florence_keras.evaluation import _checks

# Keys of a batch that hold images, in the order they are looked for.
_IMAGE_KEYS = ("images", "image")


class _NoProgbar:
    def update(self, current, finalize=None):
        del current, finalize


def progress_bar(target, verbose=True, unit_name="step"):
    """A `keras.utils.Progbar` (call `.update(step)`), or a silent stand-in when `verbose` is false."""
    if not verbose:
        return _NoProgbar()
    import keras  # Lazy: the metric code does not need Keras.

    return keras.utils.Progbar(target, unit_name=unit_name)


def finish_progress_bar(progbar, current):
    """Ends a progress bar at `current` steps when it has not ended by reaching its target (skips, no target)."""
    if getattr(progbar, "target", None) != current:
        progbar.update(current, finalize=True)


def _as_array(value):
    """Converts a batch field to numpy; byte strings become str so they can be cached without pickle."""
    array = _checks.to_numpy(value)
    if array.dtype == object or array.dtype.kind == "S":
        array = np.array(
            [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
        ).reshape(array.shape)
    return array


def _split_batch(batch, image_key):
    """Returns `(images, extras_dict)` from a dict, an `(images, labels)` tuple or a bare image batch."""
    if isinstance(batch, dict):
        key = image_key if image_key is not None else next((k for k in _IMAGE_KEYS if k in batch), None)
        if key is None or key not in batch:
            raise ValueError(
                f"Dataset elements are dicts without an image key {image_key or _IMAGE_KEYS}. "
                f"Received keys: {sorted(batch)}"
            )
        return batch[key], {k: v for k, v in batch.items() if k != key}
    if isinstance(batch, (tuple, list)):
        if len(batch) != 2:
            raise ValueError(
                f"Tuple dataset elements must be (images, labels). Received a tuple of length {len(batch)}"
            )
        return batch[0], {"labels": batch[1]}
    return batch, {}


def encode_image_dataset(encode_images, dataset, image_key=None, keep_keys=("labels",), verbose=True,
                         num_batches=None):
    """Encodes every image of a batched dataset into a numpy feature matrix.

    Args:
        encode_images: callable, a batch of images (as the dataset yields them, e.g. uint8 `[B, H, W, 3]`) ->
            `[B, D]` features (any tensor type). `FlorenceCLIP.encode_images` fits.
        dataset: an iterable of batches (a batched `tf.data.Dataset`, or a list of arrays for tests). A batch is
            a dict holding an image key (`"images"` by default), an `(images, labels)` tuple, or a bare image
            batch.
        image_key: the image key of dict batches; by default `"images"` or `"image"`.
        keep_keys: other batch fields to return alongside the features (e.g. `"labels"`, `"texts"`); a
            missing key is an error. Byte strings are decoded to `str`.
        verbose: show a `keras.utils.Progbar` (one step per batch).
        num_batches: the progress bar's total when the dataset's cardinality is unknown (a reader that skips bad
            examples), e.g. from `image_records.count_listed_examples`; the bar may end short of it.

    Returns:
        dict with `"features"` (float32 `[N, D]`) and one numpy array `[N, ...]` per key of `keep_keys`.

    Example:
    >>> batches = [np.zeros((2, 4, 4, 3), "uint8"), np.ones((1, 4, 4, 3), "uint8")]
    >>> out = encode_image_dataset(lambda x: np.reshape(x, (len(x), -1))[:, :2] + 1.0, batches,
    ...                            keep_keys=(), verbose=False)
    >>> out["features"].shape
    (3, 2)
    """
    if not callable(encode_images):
        raise ValueError(f"`encode_images` must be callable. Received: encode_images={encode_images!r}")
    keep_keys = tuple(keep_keys or ())
    target = None
    if hasattr(dataset, "cardinality"):
        cardinality = int(dataset.cardinality())
        target = cardinality if cardinality > 0 else None
    elif hasattr(dataset, "__len__"):
        target = len(dataset)
    target = target or num_batches
    progbar = progress_bar(target, verbose, unit_name="batch")
    features, extras = [], {key: [] for key in keep_keys}
    dim = None
    for step, batch in enumerate(dataset):
        images, fields = _split_batch(batch, image_key)
        batch_size = int(images.shape[0]) if hasattr(images, "shape") else len(images)
        encoded = _checks.to_numpy(encode_images(images))
        if encoded.ndim != 2 or encoded.shape[0] != batch_size:
            raise ValueError(
                f"`encode_images` must return [batch, dim] features for a batch of {batch_size} images. "
                f"Received shape {encoded.shape} at batch {step}"
            )
        if dim is not None and encoded.shape[1] != dim:
            raise ValueError(f"Feature size changed from {dim} to {encoded.shape[1]} at batch {step}")
        dim = encoded.shape[1]
        features.append(encoded.astype(np.float32, copy=False))
        for key in keep_keys:
            if key not in fields:
                raise ValueError(f"Batch {step} has no field {key!r}. Received keys: {sorted(fields)}")
            extras[key].append(_as_array(fields[key]))
        progbar.update(step + 1)
    if not features:
        raise ValueError("`dataset` yielded no batches; there is nothing to encode.")
    finish_progress_bar(progbar, len(features))
    result = {"features": np.concatenate(features, axis=0)}
    for key in keep_keys:
        result[key] = np.concatenate(extras[key], axis=0)
    return result


def encode_texts_in_batches(encode_texts, texts, batch_size=256, verbose=False):
    """Encodes a list of strings in batches into a float32 `[len(texts), D]` numpy array.

    Args:
        encode_texts: callable, list of str -> `[B, D]` features. `FlorenceCLIP.encode_texts` fits.
        texts: list of str.
        batch_size: texts per call.
        verbose: show a progress bar.

    Returns:
        float32 numpy array `[len(texts), D]`.

    Example:
    >>> encode_texts_in_batches(lambda t: np.ones((len(t), 3)), ["a", "b", "c"], batch_size=2).shape
    (3, 3)
    """
    if not callable(encode_texts):
        raise ValueError(f"`encode_texts` must be callable. Received: encode_texts={encode_texts!r}")
    batch_size = _checks.check_positive_int(batch_size, "batch_size")
    texts = list(texts)
    if not texts:
        raise ValueError("`texts` is empty; there is nothing to encode.")
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise ValueError(f"`texts` must be strings. Received: {bad[0]!r}")
    num_batches = -(-len(texts) // batch_size)
    progbar = progress_bar(num_batches, verbose, unit_name="batch")
    out = []
    for step, start in enumerate(range(0, len(texts), batch_size)):
        chunk = texts[start : start + batch_size]
        encoded = _checks.to_numpy(encode_texts(chunk))
        if encoded.ndim != 2 or encoded.shape[0] != len(chunk):
            raise ValueError(
                f"`encode_texts` must return [batch, dim] features for {len(chunk)} texts. "
                f"Received shape {encoded.shape}"
            )
        out.append(encoded.astype(np.float32, copy=False))
        progbar.update(step + 1)
    return np.concatenate(out, axis=0)


def path_fingerprint(path):
    """A short hash of a file or directory tree: relative names, sizes and modification times.

    Content is not read (that would cost as much as encoding); any rewrite changes the mtime.

    Example:
    >>> len(path_fingerprint(__file__))
    16
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"Cannot fingerprint a path that does not exist. Received: path={path!r}")
    digest = hashlib.sha256()
    if os.path.isfile(path):
        entries = [path]
    else:
        entries = []
        for root, dirs, files in os.walk(path):
            dirs.sort()
            entries.extend(os.path.join(root, name) for name in sorted(files))
    for entry in entries:
        stat = os.stat(entry)
        relative = os.path.relpath(entry, path) if entry != path else os.path.basename(path)
        digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf-8"))
    return digest.hexdigest()[:16]


def feature_cache_key(**parts):
    """A stable hex key from JSON-serialisable parts, e.g. `feature_cache_key(preset=..., data=..., split=...)`.

    Use `path_fingerprint` for parts that are local files or directories, so a changed preset or dataset gets
    a new key.

    Example:
    >>> feature_cache_key(preset="florence_tiny", data=["a.csv"], split="train") == feature_cache_key(
    ...     split="train", data=["a.csv"], preset="florence_tiny")
    True
    """
    if not parts:
        raise ValueError("`feature_cache_key` needs at least one part (e.g. preset=..., data=..., split=...).")
    try:
        text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    except TypeError as error:
        raise ValueError(f"Cache key parts must be JSON-serialisable. Received: {parts!r}") from error
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def load_or_compute_features(cache_dir, key, compute_fn):
    """Returns `compute_fn()` (a dict of numpy arrays), cached as `<cache_dir>/<key>.npz`.

    With `cache_dir=None` nothing is cached. A cache file that cannot be read is logged and recomputed. Arrays
    of Python objects are refused (they would need pickle); byte strings should be decoded to `str` first.

    Args:
        cache_dir: directory for the cache, or None.
        key: file stem, e.g. from `feature_cache_key`.
        compute_fn: callable with no arguments returning a dict of str -> numpy array.

    Returns:
        dict of str -> numpy array.
    """
    if cache_dir is None:
        return _check_arrays(compute_fn())
    if not isinstance(key, str) or not key or os.sep in key or key.startswith("."):
        raise ValueError(f"`key` must be a plain file stem. Received: key={key!r}")
    path = os.path.join(os.fspath(cache_dir), key + ".npz")
    if os.path.exists(path):
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
            logging.info("Loaded cached features from %s", path)
            return arrays
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            logging.warning("Ignoring unreadable feature cache %s (%s); recomputing.", path, error)
    arrays = _check_arrays(compute_fn())
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(temporary, **arrays)
    os.replace(temporary, path)
    return arrays


def _check_arrays(arrays):
    if not isinstance(arrays, dict) or not arrays:
        raise ValueError(f"`compute_fn` must return a non-empty dict of arrays. Received: {type(arrays)}")
    checked = {}
    for name, value in arrays.items():
        array = np.asarray(value)
        if array.dtype == object:
            raise ValueError(
                f"Array {name!r} has dtype object, which cannot be cached without pickle; convert it to "
                "numbers or str first."
            )
        checked[name] = array
    return checked

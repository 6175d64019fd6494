"""Reads and decodes a stream of image "pointers" in tf.data, skipping and counting every bad one.

How bad examples are caught without losing the count (tf.data has no try/except, and
`ignore_errors` drops failures silently):

1. Each pointer (a file path, a byte range of a tar shard, or an inline serialized Example) becomes its own
   one-element sub-dataset: read the bytes, check the header in the graph (`decode_image_checked`), decode.
2. `ignore_errors()` on that sub-dataset turns a read or decode error (missing file, truncated or corrupt data)
   into an empty sub-dataset; a fallback element carrying the pointer and `DECODE_ERROR` is concatenated and
   `take(1)` keeps the first: the decoded image, or the fallback. Sub-datasets run under a parallel, deterministic
   `interleave`, so the stream keeps its order.
3. A sequential map calls Python (`tf.py_function`) only for failed elements: it classifies the failure
   (re-reading the bytes: missing / empty / not_an_image / truncated / corrupt) and records it in a
   `SkipCounter`; a filter then drops them. Good examples never enter Python.

Pointer fields (all scalars): `sources` (str shown in reports), `paths`, `offsets`, `lengths`, `footers`
(int64 byte range; `lengths = -1` means the whole file), `records` (inline serialized Example or ""),
`texts`, `class_names`, `reasons` (int32, `OK` unless the pointer is already known bad).
"""

import tensorflow as tf

from florence_keras.data import image_decoding
from florence_keras.data import tfrecord_example

# How the encoded bytes of a pointer are obtained.
READ_FILE = "file"
READ_RANGE = "range"
PARSE_EXAMPLE = "example"
_KINDS = (READ_FILE, READ_RANGE, PARSE_EXAMPLE)

POINTER_KEYS = ("sources", "paths", "offsets", "lengths", "footers", "records", "texts", "class_names", "reasons")


def make_pointers(sources, paths, texts=None, class_names=None, offsets=None, lengths=None, footers=None,
                  records=None, reasons=None):
    """A dict of pointer tensors (or lists) with defaults for the fields a format doesn't use.

    Args:
        sources, paths: str tensors/lists (required).
        texts, class_names, records: str tensors/lists; default "".
        offsets, footers: int64; default 0. lengths: int64; default -1 (whole file).
        reasons: int32; default `OK`.

    Returns:
        dict keyed by `POINTER_KEYS`, suitable for `tf.data.Dataset.from_tensor_slices` / `map` outputs.
    """
    sources = tf.convert_to_tensor(sources, tf.string)
    shape = tf.shape(sources)

    def fill(value, dtype, default):
        if value is None:
            return tf.fill(shape, tf.constant(default, dtype))
        return tf.convert_to_tensor(value, dtype)

    return {
        "sources": sources,
        "paths": tf.convert_to_tensor(paths, tf.string),
        "offsets": fill(offsets, tf.int64, 0),
        "lengths": fill(lengths, tf.int64, -1),
        "footers": fill(footers, tf.int64, 0),
        "records": fill(records, tf.string, ""),
        "texts": fill(texts, tf.string, ""),
        "class_names": fill(class_names, tf.string, ""),
        "reasons": fill(reasons, tf.int32, image_decoding.OK),
    }


def _read_bytes_python(pointer, kind, example_keys):
    """The encoded image bytes of a failed pointer, re-read in Python, or a failure reason str."""
    path = pointer["paths"].decode("utf-8", "replace")
    if kind == PARSE_EXAMPLE:
        data = tfrecord_example.parse_image_text_example_python(pointer["records"], example_keys[0])
        return data if data is not None else "corrupt_record"
    if not tf.io.gfile.exists(path):
        return "missing"
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            if kind == READ_RANGE:
                f.seek(pointer["offsets"])
                return f.read(pointer["lengths"])
            return f.read()
    except (OSError, tf.errors.OpError):
        return "unreadable"


def _python_reason(pointer, kind, example_keys):
    reason = int(pointer["reasons"])
    if reason != image_decoding.DECODE_ERROR:
        return image_decoding.REASON_NAMES[reason]
    data = _read_bytes_python(pointer, kind, example_keys)
    if isinstance(data, str):
        return data
    return image_decoding.classify_undecodable(data)


def decode_pointers(pointers, kind, skip_counter, max_pixels=image_decoding.DEFAULT_MAX_PIXELS,
                    keep_encoded=False, num_parallel_calls=tf.data.AUTOTUNE,
                    example_keys=(tfrecord_example.IMAGE_KEY, tfrecord_example.TEXT_KEY, tfrecord_example.CLASS_KEY)):
    """Reads, checks and decodes a dataset of pointers; bad ones are skipped and counted.

    Args:
        pointers: `tf.data.Dataset` of pointer dicts (see module docstring).
        kind: how to get the bytes: `"file"` (`tf.io.read_file`), `"range"` (byte range of `paths`),
            `"example"` (parse the inline `records` as `tf.train.Example`).
        skip_counter: `SkipCounter` receiving every skipped element.
        max_pixels: refuse images whose header declares more pixels.
        keep_encoded: also return the encoded bytes (`encoded`).
        num_parallel_calls: parallelism of the read/decode stage.
        example_keys: `(image_key, text_key, class_key)` feature names for `"example"`.

    Returns:
        `tf.data.Dataset` of dicts: `images` uint8 `[H, W, 3]`, `texts`, `class_names`, `sources` (and `encoded`).
    """
    if kind not in _KINDS:
        raise ValueError(f"`kind` must be one of {_KINDS}. Received: kind={kind!r}")
    if max_pixels is None or max_pixels <= 0:
        raise ValueError(f"`max_pixels` must be positive. Received: max_pixels={max_pixels!r}")
    ok_code = tf.constant(image_decoding.OK)

    def with_bytes(pointer):
        """One-element dataset: the pointer plus `data`, its encoded image bytes."""
        usable = tf.equal(pointer["reasons"], ok_code)
        if kind == READ_RANGE:
            data = tf.data.FixedLengthRecordDataset(
                pointer["paths"],
                record_bytes=tf.maximum(pointer["lengths"], 1),
                header_bytes=pointer["offsets"],
                footer_bytes=pointer["footers"],
            )
            return data.take(1).map(lambda record: {**pointer, "data": record})
        if kind == READ_FILE:
            return tf.data.Dataset.from_tensors(pointer).map(
                lambda p: {**p, "data": tf.cond(usable, lambda: tf.io.read_file(p["paths"]), lambda: tf.constant(""))}
            )

        def parse(p):
            parsed = tf.cond(
                usable,
                lambda: tfrecord_example.parse_image_text_example(p["records"], *example_keys),
                lambda: {"data": tf.constant(""), "texts": p["texts"], "class_names": p["class_names"]},
            )
            return {**p, **parsed}

        return tf.data.Dataset.from_tensors(pointer).map(parse)

    def decode(item):
        reason = item["reasons"]
        no_text = tf.logical_and(tf.equal(item["texts"], ""), tf.equal(item["class_names"], ""))
        reason = tf.where(tf.logical_and(tf.equal(reason, ok_code), no_text), image_decoding.NO_TEXT, reason)
        image, reason = tf.cond(
            tf.equal(reason, ok_code),
            lambda: image_decoding.decode_image_checked(item["data"], max_pixels),
            lambda: (tf.zeros([0, 0, 3], tf.uint8), reason),
        )
        output = {key: item[key] for key in POINTER_KEYS}
        output.update(images=image, reasons=reason, encoded=item["data"])
        return output

    def guarded(pointer):
        fallback = dict(pointer)
        fallback.update(
            images=tf.zeros([0, 0, 3], tf.uint8),
            reasons=tf.where(tf.equal(pointer["reasons"], ok_code), image_decoding.DECODE_ERROR, pointer["reasons"]),
            encoded=tf.constant(""),
        )
        decoded = with_bytes(pointer).map(decode).ignore_errors()
        return decoded.concatenate(tf.data.Dataset.from_tensors(fallback)).take(1)

    def record_failure(*values):
        pointer = dict(zip(POINTER_KEYS, (value.numpy() for value in values)))
        skip_counter.record(_python_reason(pointer, kind, example_keys), pointer["sources"])
        return False

    def account(item):
        ok = tf.cond(
            tf.equal(item["reasons"], ok_code),
            lambda: tf.constant(True),
            lambda: tf.py_function(record_failure, [item[key] for key in POINTER_KEYS], tf.bool),
        )
        ok = tf.ensure_shape(ok, [])
        output = {"images": item["images"], "texts": item["texts"], "class_names": item["class_names"],
                  "sources": item["sources"]}
        if keep_encoded:
            output["encoded"] = item["encoded"]
        return ok, output

    dataset = pointers.interleave(guarded, num_parallel_calls=num_parallel_calls, deterministic=True)
    dataset = dataset.map(account)  # sequential: failures are recorded in stream order
    return dataset.filter(lambda ok, _: ok).map(lambda _, output: output)


def epoch_end_logger(skip_counter, element_spec):
    """An empty dataset that, when reached, logs the counter's summary if something new was skipped.

    Concatenate it after an epoch's elements: `dataset.concatenate(epoch_end_logger(counter, dataset.element_spec))`.

    Args:
        skip_counter: `SkipCounter`.
        element_spec: the element spec to match (a dict of `tf.TensorSpec`).

    Returns:
        `tf.data.Dataset` with no elements and the given structure.
    """

    def log():
        skip_counter.log_summary(only_if_new=True)
        return False

    def placeholder(_):
        return {
            key: tf.zeros([0 if dim is None else dim for dim in spec.shape], spec.dtype)
            for key, spec in element_spec.items()
        }

    marker = tf.data.Dataset.range(1).map(lambda _: tf.ensure_shape(tf.py_function(log, [], tf.bool), []))
    return marker.filter(lambda flag: flag).map(placeholder)

"""Reads and decodes a stream of image "pointers" in tf.data, skipping and counting every bad one.

How bad examples are caught without losing the count (tf.data has no try/except, and `ignore_errors` alone
drops failures silently):

1. Pointers (a file path, a byte range of a tar shard, or an inline serialized Example) are taken in groups of
   `group_size`, each tagged with its position in the group. A group becomes a small sub-dataset whose map reads
   the bytes, checks the header in the graph (`decode_image_checked`: empty, not an image, decompression bomb)
   and decodes; `ignore_errors()` drops the elements whose read or decode raised (missing file, truncated or
   corrupt data). Groups run under a parallel, deterministic `interleave`, so good elements keep their order.
2. A scan over the survivors (plus one end marker per group) sees the gaps in the positions: those elements
   raised. For a gap, or a survivor whose header check failed, it calls Python (`tf.py_function`, on this failure
   path only) with the group's pointers; Python names the reason (re-reading the bytes: missing / empty /
   not_an_image / truncated / corrupt ...) and records it in a `SkipCounter`. A filter drops the failures.
   Good examples never enter Python.

The order in which failures of different groups are recorded can vary (groups decode in parallel); the counts
don't. The price of py_function on the failure path: the pipeline graph can't be serialised (tf.data service,
`Dataset.save`); checkpointing an iterator works (it warns about external state).

Pointer fields (all scalars): `sources` (str shown in reports), `paths`, `offsets`, `lengths`, `footers`
(int64 byte range; `lengths = -1` means the whole file), `records` (inline serialized Example or ""),
`texts`, `class_names`, `reasons` (int32, `OK` unless the pointer is already known bad), and optionally
`positions` (int64, the record's position in its stream; passed through to the decoded element).
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

# Dataset functions are plain TF code (explicit tf.cond, no Python control flow on tensors): skipping
# AutoGraph conversion makes building a pipeline several times faster.
_plain = tf.autograph.experimental.do_not_convert


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
                f.seek(int(pointer["offsets"]))
                return f.read(int(pointer["lengths"]))
            return f.read()
    except (OSError, tf.errors.OpError):
        return "unreadable"


def _python_reason(code, pointer, kind, example_keys):
    """Names the failure of one pointer: the graph's reason code, or for `DECODE_ERROR` a look at its bytes."""
    if code != image_decoding.DECODE_ERROR:
        return image_decoding.REASON_NAMES.get(code, f"reason_{code}")
    data = _read_bytes_python(pointer, kind, example_keys)
    if isinstance(data, str):
        return data
    return image_decoding.classify_undecodable(data)


def _is_valid_utf8(strings):
    """True where a string tensor holds valid UTF-8 (replacing invalid sequences would change it)."""
    return tf.equal(strings, tf.strings.unicode_transcode(strings, "UTF-8", "UTF-8", errors="replace"))


def _read_ranges(pointers, num_parallel_calls):
    """Reads each pointer's byte range into `records`; a failed read sets `DECODE_ERROR` (classified later)."""

    def read(pointer):
        data = tf.data.FixedLengthRecordDataset(
            pointer["paths"],
            record_bytes=tf.maximum(pointer["lengths"], 1),
            header_bytes=pointer["offsets"],
            footer_bytes=pointer["footers"],
        )
        read_ok = data.take(1).map(_plain(lambda record: {**pointer, "records": record})).ignore_errors()
        failed = {**pointer, "reasons": tf.where(tf.equal(pointer["reasons"], image_decoding.OK),
                                                 image_decoding.DECODE_ERROR, pointer["reasons"])}
        return read_ok.concatenate(tf.data.Dataset.from_tensors(failed)).take(1)

    return pointers.interleave(_plain(read), num_parallel_calls=num_parallel_calls, deterministic=True)


_END = -1  # reason of a group's end marker


def decode_pointers(pointers, kind, skip_counter, max_pixels=image_decoding.DEFAULT_MAX_PIXELS,
                    keep_encoded=False, num_parallel_calls=tf.data.AUTOTUNE,
                    example_keys=(tfrecord_example.IMAGE_KEY, tfrecord_example.TEXT_KEY, tfrecord_example.CLASS_KEY),
                    group_size=32):
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
        group_size: pointers guarded together in one sub-dataset (amortises its cost; order is kept).

    Returns:
        `tf.data.Dataset` of dicts: `images` uint8 `[H, W, 3]`, `texts`, `class_names`, `sources` (and `encoded`).
    """
    if kind not in _KINDS:
        raise ValueError(f"`kind` must be one of {_KINDS}. Received: kind={kind!r}")
    if max_pixels is None or max_pixels <= 0:
        raise ValueError(f"`max_pixels` must be positive. Received: max_pixels={max_pixels!r}")
    if not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"`group_size` must be an int >= 1. Received: group_size={group_size!r}")
    ok_code = tf.constant(image_decoding.OK)
    if kind == READ_RANGE:
        pointers = _read_ranges(pointers, num_parallel_calls)

    def decode(item):
        """Reads (or parses) and decodes one pointer; raises on unreadable or undecodable data.

        No conditionals on the pointer's own reason: a pointer that is already bad either raises here (it has no
        readable bytes) or has its bytes blanked, and keeps its reason.
        """
        texts, class_names = item["texts"], item["class_names"]
        if kind == READ_FILE:
            data = tf.io.read_file(item["paths"])
        elif kind == READ_RANGE:
            data = item["records"]
        else:
            parsed = tfrecord_example.parse_image_text_example(item["records"], *example_keys)
            data, texts, class_names = parsed["data"], parsed["texts"], parsed["class_names"]
        no_text = tf.logical_and(tf.equal(texts, ""), tf.equal(class_names, ""))
        reason = tf.where(no_text, image_decoding.NO_TEXT,
                          tf.where(_is_valid_utf8(texts) & _is_valid_utf8(class_names), item["reasons"],
                                   image_decoding.BAD_TEXT))
        usable = tf.equal(reason, ok_code)
        image, decode_reason = image_decoding.decode_image_checked(tf.where(usable, data, ""), max_pixels)
        output = {"position": item["position"], "images": image, "reasons": tf.where(usable, decode_reason, reason),
                  "texts": texts, "class_names": class_names, "sources": item["sources"]}
        if "positions" in item:  # a positioned stream (image_records `start_position`) keeps each record's position
            output["positions"] = item["positions"]
        if keep_encoded:
            output["encoded"] = data
        return output

    def report(first, position, code, *group_values):
        """Python, failure path only: records the pointers `first .. position - 1` (they raised) and, if `code`
        says so, the one at `position`."""
        group = dict(zip(POINTER_KEYS, (value.numpy() for value in group_values)))
        failures = [(i, image_decoding.DECODE_ERROR) for i in range(int(first), int(position))]
        code = int(code)
        if code not in (image_decoding.OK, _END):
            failures.append((int(position), code))
        for index, failure_code in failures:
            pointer = {key: values[index] for key, values in group.items()}
            if failure_code == image_decoding.DECODE_ERROR and pointer["reasons"] != image_decoding.OK:
                failure_code = int(pointer["reasons"])  # a pointer known bad before reading
            skip_counter.record(_python_reason(failure_code, pointer, kind, example_keys), pointer["sources"])
        return False

    def guarded_group(group):
        count = tf.shape(group["sources"])[0]
        items = {**group, "position": tf.range(count)}
        decoded = tf.data.Dataset.from_tensor_slices(items).map(_plain(decode)).ignore_errors()
        end = {key: tf.zeros([0 if dim is None else dim for dim in spec.shape], spec.dtype)
               for key, spec in decoded.element_spec.items()}
        end.update(position=count, reasons=tf.constant(_END))
        stream = decoded.concatenate(tf.data.Dataset.from_tensors(end))

        def account(expected, item):
            position, code = item["position"], item["reasons"]
            failed = tf.logical_or(position > expected, tf.logical_and(code != ok_code, code != _END))
            reported = tf.cond(
                failed,
                lambda: tf.py_function(report, [expected, position, code] + [group[k] for k in POINTER_KEYS],
                                       tf.bool),
                lambda: tf.constant(False),
            )
            keep = tf.logical_and(tf.equal(code, ok_code), tf.logical_not(tf.ensure_shape(reported, [])))
            output = {key: value for key, value in item.items() if key not in ("position", "reasons")}
            return position + 1, (keep, output)

        kept = stream.scan(tf.constant(0), _plain(account)).filter(_plain(lambda keep, _: keep))
        return kept.map(_plain(lambda _, output: output))

    return pointers.batch(group_size).interleave(
        _plain(guarded_group), block_length=group_size, num_parallel_calls=num_parallel_calls, deterministic=True
    )


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

    marker = tf.data.Dataset.range(1).map(_plain(lambda _: tf.ensure_shape(tf.py_function(log, [], tf.bool), [])))
    return marker.filter(_plain(lambda flag: flag)).map(_plain(placeholder))

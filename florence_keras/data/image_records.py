"""tf.data reader of decoded images with their caption or class name, for every supported on-disk format.

This is the format layer under `load_image_text_dataset` (which adds resizing, augmentation, prompt templates and
labels) and `write_tfrecord_shards` (which re-encodes resized images). Formats:

* `csv` / `tsv`: an index file with a header, columns `filepath` and `caption` (names configurable).
* `csvlabel`: an index file with columns `filepath` and `label` (a class name; or an index into `class_names`).
* `coco`: COCO captions JSON; one example per caption annotation.
* `imagefolder`: `root/class_name/**/file`; the class is the directory name.
* `wds`: webdataset tar shards (`key.jpg` + `key.txt`).
* `tfrecord`: `tf.train.Example` with `image/encoded` and `caption` or `image/class/text`.

Sharding (`input_context`): by file when there are at least as many files (index files, tar or TFRecord shards) as
input pipelines, otherwise by element; every element goes to exactly one pipeline either way.

Bad examples are skipped and counted (see `guarded_decode.py`); at the end of every epoch one log line reports
the count and the first sources, if anything new was skipped. Index files are parsed in Python when the pipeline
is built; tar shards are indexed in Python once per shard while reading (`tf.py_function`); image bytes, decoding
and everything per example stay in the graph.
"""

import numpy as np
import tensorflow as tf

from florence_keras.data import guarded_decode
from florence_keras.data import image_decoding
from florence_keras.data import tfrecord_example
from florence_keras.data import webdataset_index
from florence_keras.data.coco_captions_index import read_coco_captions
from florence_keras.data.csv_index import read_csv_index
from florence_keras.data.csv_index import to_bytes
from florence_keras.data.file_patterns import expand_paths
from florence_keras.data.image_folder_index import list_image_folder
from florence_keras.data.skip_counter import dataset_stats

DATA_FORMATS = ("csv", "tsv", "csvlabel", "coco", "imagefolder", "wds", "tfrecord")
_INDEX_FORMATS = ("csv", "tsv", "csvlabel", "coco", "imagefolder")
_TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrec", ".tfrecord.gz", ".tfrecords.gz")
_DEFAULT_KEYS = {
    "csv": ("filepath", "caption"),
    "tsv": ("filepath", "caption"),
    "csvlabel": ("filepath", "label"),
    "tfrecord": (tfrecord_example.IMAGE_KEY, tfrecord_example.TEXT_KEY),
}

# Dataset functions are plain TF code (explicit tf.cond, no Python control flow on tensors): skipping
# AutoGraph conversion makes building a pipeline several times faster.
_plain = tf.autograph.experimental.do_not_convert


def _pipeline_shard(input_context):
    if input_context is None:
        return 1, 0
    return input_context.num_input_pipelines, input_context.input_pipeline_id


def _read_index(files, data_format, image_root, keys, class_names, skip_counter=None):
    """Paths, texts and class names of every example listed in index files (one list per file)."""
    per_file = []
    for path in files:
        if data_format in ("csv", "tsv"):
            paths, texts = read_csv_index(path, keys, "\t" if data_format == "tsv" else ",", image_root)
            per_file.append((paths, texts, [""] * len(paths)))
        elif data_format == "csvlabel":
            paths, labels = read_csv_index(path, keys, ",", image_root)
            if class_names is not None:
                labels = [_class_from_label(label, class_names, path) for label in labels]
            per_file.append((paths, [""] * len(paths), labels))
        elif data_format == "coco":
            paths, texts = read_coco_captions(path, image_root)
            per_file.append((paths, texts, [""] * len(paths)))
        else:
            paths, names, _ = list_image_folder(path, skip_counter)
            per_file.append((paths, [""] * len(paths), names))
    return per_file


def _class_from_label(label, class_names, path):
    if label.isdigit() and int(label) < len(class_names):
        return class_names[int(label)]
    if label in class_names:
        return label
    raise ValueError(f"{path}: label {label!r} is neither a class name nor an index into `class_names`.")


def _index_pointers(files, data_format, image_root, keys, class_names, num_shards, shard_id, shuffle_seed,
                    shuffle, skip_counter=None):
    """Pointers of the examples listed in index files: this pipeline's files (or every n-th example).

    A training order is drawn by shuffling example *indices* (8 bytes each), not the pointers themselves.
    """
    shard_elements = len(files) < num_shards
    if not shard_elements:
        files = files[shard_id::num_shards]
    per_file = _read_index(files, data_format, image_root, keys, class_names, skip_counter)
    paths = [path for entry in per_file for path in entry[0]]
    texts = [text for entry in per_file for text in entry[1]]
    names = [name for entry in per_file for name in entry[2]]
    if shard_elements:
        paths, texts, names = paths[shard_id::num_shards], texts[shard_id::num_shards], names[shard_id::num_shards]
    if not paths:
        return None
    # Index readers keep invalid UTF-8 as lone surrogates (csv_index); the pipeline sees the original bytes, and
    # counts a caption or label that is not UTF-8 as `bad_text`.
    paths, texts, names = ([to_bytes(value) for value in values] for values in (paths, texts, names))
    table = guarded_decode.make_pointers(
        sources=paths, paths=paths, texts=np.array(texts, dtype=object), class_names=np.array(names, dtype=object)
    )
    if not shuffle:
        return tf.data.Dataset.from_tensor_slices(table)
    order = tf.data.Dataset.range(len(paths)).shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    return order.map(_plain(lambda index: {key: tf.gather(values, index) for key, values in table.items()}))


def _wds_pointers(shard, skip_counter, text_extensions):
    def index(path):
        path = path.numpy().decode("utf-8")
        try:
            found = webdataset_index.index_tar_shard(path, skip_counter, text_extensions)
        except (OSError, tf.errors.OpError):
            skip_counter.record("missing" if not tf.io.gfile.exists(path) else "unreadable", path)
            found = {
                "keys": np.array([], object), "offsets": np.array([], np.int64), "lengths": np.array([], np.int64),
                "footers": np.array([], np.int64), "texts": np.array([], object),
            }
        return found["keys"], found["offsets"], found["lengths"], found["footers"], found["texts"]

    keys, offsets, lengths, footers, texts = tf.py_function(
        index, [shard], [tf.string, tf.int64, tf.int64, tf.int64, tf.string]
    )
    values = [tf.ensure_shape(value, [None]) for value in (keys, offsets, lengths, footers, texts)]
    keys, offsets, lengths, footers, texts = values
    reasons = tf.where(lengths > 0, image_decoding.OK, image_decoding.EMPTY)
    pointers = guarded_decode.make_pointers(
        sources=tf.strings.join([shard, keys], ":"),
        paths=tf.fill(tf.shape(keys), shard),
        texts=texts,
        offsets=offsets,
        lengths=lengths,
        footers=footers,
        reasons=reasons,
    )
    return tf.data.Dataset.from_tensor_slices(pointers)


def _framed_record_count(path, size, compressed):
    """How many records of an uncompressed TFRecord file have a declared length that fits in the file (-1: all).

    Runs in Python once per file (one 12-byte read per record, like the tar index of `wds` shards), before
    TensorFlow reads the file: TensorFlow's record reader allocates the declared length before reading, so a
    length field forged to e.g. 2**40 (with a valid length checksum) crashes the process. Reading stops before
    the first record that can't fit; the file is then reported as `corrupt_file`. GZIP files can't be checked
    without decompressing them and are read as they are.
    """
    if bool(compressed):
        return -1
    path, size = path.numpy().decode("utf-8", "surrogateescape"), int(size)
    count, offset = 0, 0
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            while offset + 16 <= size:
                f.seek(offset)
                length = int.from_bytes(f.read(8), "little")
                if length > size - offset - 16:
                    break
                offset += length + 16
                count += 1
    except (OSError, tf.errors.OpError):
        pass  # the reader meets the same error and reports the file
    return count


def _tfrecord_pointers(path, size, compressed):
    """Records of one TFRecord file, plus a `CORRUPT_FILE` pointer if it can't be read to its end.

    An uncompressed file is complete when the records read account for every byte (record length + 16 bytes of
    framing each); a read error (truncation, CRC mismatch) or a record whose declared length exceeds the file
    (`_framed_record_count`) stops the file early and is reported once.
    """
    framed = tf.ensure_shape(tf.py_function(_framed_record_count, [path, size, compressed], tf.int64), [])
    records = tf.data.TFRecordDataset(path, compression_type=tf.where(compressed, "GZIP", ""))
    records = records.take(framed).ignore_errors()
    tagged = records.map(_plain(lambda record: (record, tf.constant(False))))
    stream = tagged.concatenate(tf.data.Dataset.from_tensors((tf.constant(""), tf.constant(True))))

    def step(state, item):
        consumed, count = state
        record, is_end = item
        framed = tf.cast(tf.strings.length(record, "BYTE"), tf.int64) + 16  # length, 2 CRCs, data
        consumed += tf.where(is_end, tf.constant(0, tf.int64), framed)
        count += tf.where(is_end, tf.constant(0, tf.int64), tf.constant(1, tf.int64))
        return (consumed, count), (record, is_end, consumed, count)

    scanned = stream.scan((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), _plain(step))

    def keep(record, is_end, consumed, count):
        # Compressed files can't be checked by size: a read error there ends the file unreported.
        broken = tf.logical_and(tf.logical_not(compressed), tf.not_equal(consumed, size))
        return tf.logical_or(tf.logical_not(is_end), broken)

    def to_pointer(record, is_end, consumed, count):
        source = tf.where(
            is_end,
            tf.strings.join([path, " (unreadable after ", tf.strings.as_string(count), " records)"]),
            tf.strings.join([path, "#", tf.strings.as_string(count - 1)]),
        )
        pointer = guarded_decode.make_pointers(
            sources=source,
            paths=path,
            records=record,
            reasons=tf.where(is_end, image_decoding.CORRUPT_FILE, image_decoding.OK),
        )
        return pointer

    return scanned.filter(_plain(keep)).map(_plain(to_pointer))


def _record_files(paths, data_format):
    suffixes = (".tar",) if data_format == "wds" else _TFRECORD_SUFFIXES
    return expand_paths(paths, directory_suffixes=suffixes)


def load_image_records(paths, data_format, training=False, seed=None, input_context=None, shuffle_buffer_size=1000,
                       skip_counter=None, max_image_pixels=image_decoding.DEFAULT_MAX_PIXELS, image_root=None,
                       image_key=None, text_key=None, class_names=None, keep_encoded=False,
                       num_parallel_calls=tf.data.AUTOTUNE, log_skips_each_epoch=True):
    """Decoded images with their caption or class name, from any supported format.

    Args:
        paths: str (comma-separated, globs and `{000..009}` ranges allowed) or list of str: index files
            (csv/tsv/csvlabel/coco), ImageFolder roots, or tar / TFRecord shards (or directories of them).
        data_format: one of `DATA_FORMATS`.
        training: shuffle (files and elements; reshuffled every epoch).
        seed: int or None; with a seed the element order is the same every time the pipeline is built.
        input_context: `tf.distribute.InputContext` or None; this pipeline reads its share only.
        shuffle_buffer_size: element shuffle buffer for tar / TFRecord data (index formats shuffle fully).
        skip_counter: `SkipCounter` for skipped examples; default the module-level `dataset_stats`.
        max_image_pixels: refuse images whose header declares more pixels (decompression bombs).
        image_root: directory of the images for csv/tsv/csvlabel/coco (default: the index file's directory).
        image_key: csv image column (default `filepath`) or TFRecord image feature (default `image/encoded`).
        text_key: csv text column (`caption`; `label` for csvlabel), TFRecord caption feature (`caption`), or wds
            text extension (default: txt, text or caption).
        class_names: for csvlabel, optional list mapping integer labels to names.
        keep_encoded: also yield `encoded`, the original encoded bytes.
        num_parallel_calls: parallelism of reading and decoding.
        log_skips_each_epoch: at the end of each epoch, log one line if new examples were skipped.

    Returns:
        `tf.data.Dataset` of dicts: `images` uint8 `[H, W, 3]` (RGB), `texts` (caption or ""), `class_names`
        (class or ""), `sources` (str naming the example).

    Raises:
        DataFormatError: a malformed index file (names the file and line).
        FileNotFoundError: a path argument that matches nothing.

    Example:
    >>> import tempfile
    >>> from florence_keras.data.builtin_dataset import write_builtin_dataset
    >>> paths = write_builtin_dataset(tempfile.mkdtemp(), num_train=4, num_heldout=0, formats=("imagefolder",))
    >>> record = next(iter(load_image_records(paths["imagefolder"]["train"], "imagefolder")))
    >>> record["images"].shape.as_list(), record["class_names"].numpy().decode() in paths["class_names"]
    ([64, 64, 3], True)
    """
    if data_format not in DATA_FORMATS:
        raise ValueError(f"`data_format` must be one of {DATA_FORMATS}. Received: data_format={data_format!r}")
    if not isinstance(shuffle_buffer_size, int) or shuffle_buffer_size < 1:
        raise ValueError(f"`shuffle_buffer_size` must be an int >= 1. Received: {shuffle_buffer_size!r}")
    skip_counter = dataset_stats if skip_counter is None else skip_counter
    num_shards, shard_id = _pipeline_shard(input_context)
    default_image_key, default_text_key = _DEFAULT_KEYS.get(data_format, (None, None))
    image_key = image_key or default_image_key
    text_key = text_key or default_text_key
    file_seed = seed
    element_seed = None if seed is None else seed + 1

    if data_format in _INDEX_FORMATS:
        files = expand_paths(paths) if data_format != "imagefolder" else _expand_roots(paths)
        pointers = _index_pointers(files, data_format, image_root, (image_key, text_key), class_names,
                                   num_shards, shard_id, element_seed, training, skip_counter)
        if pointers is None:
            raise ValueError(f"No examples listed in {files} for input pipeline {shard_id} of {num_shards}.")
        kind = guarded_decode.READ_FILE
    else:
        files = _record_files(paths, data_format)
        shard_elements = len(files) < num_shards
        if not shard_elements and num_shards > 1:
            files = files[shard_id::num_shards]
        file_dataset = _file_dataset(files, data_format)
        if training:
            file_dataset = file_dataset.shuffle(len(files), seed=file_seed, reshuffle_each_iteration=True)
        if data_format == "wds":
            extensions = (text_key,) if text_key else webdataset_index.TEXT_EXTENSIONS
            read = lambda item: _wds_pointers(item["paths"], skip_counter, extensions)  # noqa: E731
            kind = guarded_decode.READ_RANGE
        else:
            read = lambda item: _tfrecord_pointers(item["paths"], item["sizes"], item["compressed"])  # noqa: E731
            kind = guarded_decode.PARSE_EXAMPLE
        # Training mixes up to 8 files; evaluation reads them one after the other (file order, then record order).
        pointers = file_dataset.interleave(
            _plain(read), cycle_length=max(1, min(len(files), 8)) if training else 1,
            num_parallel_calls=num_parallel_calls, deterministic=True,
        )
        if shard_elements and num_shards > 1:
            pointers = pointers.shard(num_shards, shard_id)
        if training:
            pointers = pointers.shuffle(shuffle_buffer_size, seed=element_seed, reshuffle_each_iteration=True)

    example_keys = (
        image_key or tfrecord_example.IMAGE_KEY,
        text_key or tfrecord_example.TEXT_KEY,
        tfrecord_example.CLASS_KEY,
    )
    dataset = guarded_decode.decode_pointers(
        pointers, kind, skip_counter, max_pixels=max_image_pixels, keep_encoded=keep_encoded,
        num_parallel_calls=num_parallel_calls, example_keys=example_keys,
    )
    if log_skips_each_epoch:
        dataset = dataset.concatenate(guarded_decode.epoch_end_logger(skip_counter, dataset.element_spec))
    options = tf.data.Options()
    options.deterministic = True
    if input_context is not None:
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options)


def _expand_roots(paths):
    if isinstance(paths, str):
        paths = [path.strip() for path in paths.split(",") if path.strip()]
    roots = [str(path) for path in paths]
    if not roots:
        raise ValueError(f"`paths` is empty. Received: paths={paths!r}")
    for root in roots:
        if not tf.io.gfile.isdir(root):
            raise FileNotFoundError(f"ImageFolder root is not a directory: {root!r}")
    return roots


def _file_dataset(files, data_format):
    sizes = [tf.io.gfile.stat(path).length for path in files] if data_format == "tfrecord" else [0] * len(files)
    compressed = [path.endswith(".gz") for path in files]
    return tf.data.Dataset.from_tensor_slices(
        {"paths": files, "sizes": np.array(sizes, np.int64), "compressed": np.array(compressed, bool)}
    )


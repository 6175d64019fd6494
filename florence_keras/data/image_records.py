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

Positioned streams (`start_position`, what training uses): an endless stream in which every record carries its
position, `epoch * EPOCH_STRIDE + index` (the record's index in that epoch's order), and which starts at any position
without reading what comes before it. Index formats are read in a permutation of the records drawn per epoch from
`(seed, epoch)` — record k of epoch e is row `tf.random.experimental.index_shuffle(k, [seed, e], n - 1)` of the n
rows of this pipeline's index (files in order, rows in order) — so the stream starts at record k of epoch e directly.
Record streams (wds, tfrecord) are read in a file permutation and a block shuffle (blocks of `shuffle_buffer_size`
records) drawn per epoch from `(seed, epoch)` alone (`keyed_shuffle`: not from tf.random's global seed); starting
inside an epoch passes over the epoch's first records at the pointer level (a tar shard's index, a TFRecord
record's bytes) without decoding them, and never re-reads earlier epochs.

Bad examples are skipped and counted (see `guarded_decode.py`); at the end of every epoch one log line reports
the count and the first sources, if anything new was skipped. Index files are parsed in Python when the pipeline
is built; tar shards are indexed in Python once per shard while reading (`tf.py_function`); image bytes, decoding
and everything per example stay in the graph.
"""

import logging

import numpy as np
import tensorflow as tf

from florence_keras.data import caption_groups
from florence_keras.data import guarded_decode
from florence_keras.data import image_decoding
from florence_keras.data import keyed_shuffle
from florence_keras.data import tfrecord_example
from florence_keras.data import tfrecord_framing
from florence_keras.data import webdataset_index
from florence_keras.data.coco_captions_index import read_coco_captions
from florence_keras.data.csv_index import read_csv_index
from florence_keras.data.csv_index import to_bytes
from florence_keras.data.file_patterns import expand_paths
from florence_keras.data.image_folder_index import list_image_folder
from florence_keras.data.regular_files import drop_special_files
from florence_keras.data.skip_counter import dataset_stats

DATA_FORMATS = ("csv", "tsv", "csvlabel", "coco", "imagefolder", "wds", "tfrecord")
_INDEX_FORMATS = ("csv", "tsv", "csvlabel", "coco", "imagefolder")
logger = logging.getLogger(__name__)
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

# Positions in a positioned stream: epoch * EPOCH_STRIDE + index in the epoch. An int64 then holds 2**23 epochs of up to
# 2**40 records per input pipeline [ours].
EPOCH_STRIDE = 2**40
_MAX_EPOCHS = 2**23


def split_position(position):
    """`(epoch, index)` of a position of a positioned stream (see `load_image_records(start_position=...)`).

    Example:
    >>> split_position(3 * EPOCH_STRIDE + 17)
    (3, 17)
    """
    position = int(position)
    if position < 0:
        raise ValueError(f"A stream position is >= 0. Received: position={position}")
    return divmod(position, EPOCH_STRIDE)


def _pipeline_shard(input_context):
    if input_context is None:
        return 1, 0
    return input_context.num_input_pipelines, input_context.input_pipeline_id


def index_entries(paths, data_format):
    """`[(format, file)]` of index files (csv/tsv/csvlabel/coco) and ImageFolder roots, one format per entry.

    An entry may name its own format with a prefix, `FORMAT:PATH` (e.g. `imagefolder:/data/labelled`), so one
    training set can join captioned and labelled examples (UniCL's image-text-label space); other entries have
    `data_format`. Comma-separated strings, globs and `{000..009}` ranges are expanded per entry.
    """
    if isinstance(paths, str):
        paths = [path.strip() for path in paths.split(",") if path.strip()]
    entries = []
    for path in paths:
        path = str(path)
        prefix, _, rest = path.partition(":")
        fmt, path = (prefix, rest) if prefix in _INDEX_FORMATS and rest else (data_format, path)
        if fmt not in _INDEX_FORMATS:
            raise ValueError(f"Only index formats ({', '.join(_INDEX_FORMATS)}) can be joined in one training set; "
                             f"{path!r} is {fmt}.")
        files = _expand_roots([path]) if fmt == "imagefolder" else expand_paths([path])
        entries.extend((fmt, file) for file in files)
    if not entries:
        raise ValueError(f"`paths` is empty. Received: paths={paths!r}")
    return entries


def _read_index(entries, image_root, keys, class_names, skip_counter=None):
    """Paths, texts and class names of every example listed in index files (one list per file).

    `entries`: `[(format, file)]`; `keys`: `(image_key, text_key)`, None for a format's default."""
    per_file = []
    for data_format, path in entries:
        default_keys = _DEFAULT_KEYS.get(data_format, (None, None))
        file_keys = (keys[0] or default_keys[0], keys[1] or default_keys[1])
        if data_format in ("csv", "tsv"):
            paths, texts = read_csv_index(path, file_keys, "\t" if data_format == "tsv" else ",", image_root)
            entry = (paths, texts, [""] * len(paths))
        elif data_format == "csvlabel":
            paths, labels = read_csv_index(path, file_keys, ",", image_root)
            if class_names is not None:
                labels = [_class_from_label(label, class_names, path) for label in labels]
            entry = (paths, [""] * len(paths), labels)
        elif data_format == "coco":
            paths, texts = read_coco_captions(path, image_root)
            entry = (paths, texts, [""] * len(paths))
        else:
            paths, names, _ = list_image_folder(path, skip_counter)
            entry = (paths, [""] * len(paths), names)
        if data_format != "imagefolder":  # (the folder listing leaves them out itself)
            entry = drop_special_files(*entry, skip_counter=skip_counter)
        per_file.append(entry)
    return per_file


def _class_from_label(label, class_names, path):
    if label.isdigit() and int(label) < len(class_names):
        return class_names[int(label)]
    if label in class_names:
        return label
    raise ValueError(f"{path}: label {label!r} is neither a class name nor an index into `class_names`.")


def _index_table(files, image_root, keys, class_names, num_shards, shard_id, skip_counter=None):
    """Pointers of the examples listed in index files, this pipeline's files (or every n-th example), as one table
    (a dict of equal-length tensors); None when this pipeline's share is empty."""
    shard_elements = len(files) < num_shards
    if not shard_elements:
        files = files[shard_id::num_shards]
    per_file = _read_index(files, image_root, keys, class_names, skip_counter)
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
    return guarded_decode.make_pointers(
        sources=paths, paths=paths, texts=np.array(texts, dtype=object), class_names=np.array(names, dtype=object)
    )


def _table_size(table):
    return int(table["sources"].shape[0])


def _table_pointers(table, shuffle_seed, shuffle):
    """One epoch of a table. A training order is drawn by shuffling example *indices* (8 bytes each), not the
    pointers themselves."""
    if not shuffle:
        return tf.data.Dataset.from_tensor_slices(table)
    count = _table_size(table)
    order = tf.data.Dataset.range(count).shuffle(count, seed=shuffle_seed, reshuffle_each_iteration=True)
    return order.map(_plain(lambda index: {key: tf.gather(values, index) for key, values in table.items()}))


def _caption_groups(table):
    """The table's grouping words (`caption_groups.caption_word_ids` of each caption and class name)."""
    texts = [(text + b" " + name).decode("utf-8", "replace")
             for text, name in zip(table["texts"].numpy().tolist(), table["class_names"].numpy().tolist())]
    values, row_splits, vocabulary = caption_groups.caption_word_ids(texts)
    logger.info("Hard-negative groups: %d grouping words over %d examples.", len(vocabulary), len(texts))
    return values, row_splits


def _permuted_table_pointers(table, seed, epoch, first, groups=None):
    """Epoch `epoch` of a table from index `first` of its order on, with `positions`: the order is the permutation
    `index_shuffle(., (seed, epoch))`, so index k is found without drawing the ones before it; with `groups`
    (`(values, row_splits, fraction, group_size)`) it is `keyed_shuffle.grouped_order` of the same key."""
    count = _table_size(table)
    key = tf.stack([tf.constant(seed, tf.int64), epoch])
    last = tf.constant(count - 1, tf.int64)
    order = None if groups is None else keyed_shuffle.grouped_order(*groups[:2], key, *groups[2:])

    def pointer(index):
        if order is None:
            row = tf.random.experimental.index_shuffle(index, key, last)
        else:
            row = tf.gather(order, index)
        values = {name: tf.gather(column, row) for name, column in table.items()}
        values["positions"] = epoch * EPOCH_STRIDE + index
        return values

    return tf.data.Dataset.range(first, count).map(_plain(pointer))


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
    """`tfrecord_framing.framed_record_count` as tensors: `(count, complete)` (runs in Python, once per file).

    TensorFlow's reader then reads only the `count` records whose declared length fits (a forged length kills a
    plain-file reader), and a file that is not `complete` is reported as `corrupt_file`.
    """
    path = path.numpy().decode("utf-8", "surrogateescape")
    return tfrecord_framing.framed_record_count(path, int(size), bool(compressed))


def _tfrecord_pointers(path, size, compressed):
    """Records of one TFRecord file, plus a `CORRUPT_FILE` pointer if it can't be read to its end.

    An uncompressed file is complete when the records read account for every byte (record length + 16 bytes of
    framing each); a read error (truncation, CRC mismatch) or a record whose declared length exceeds the file
    (`_framed_record_count`) stops the file early and is reported once.
    """
    framed, complete = tf.py_function(_framed_record_count, [path, size, compressed], [tf.int64, tf.bool])
    framed, complete = tf.ensure_shape(framed, []), tf.ensure_shape(complete, [])
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
        # A plain file must be read to its last byte; a GZIP file (its decompressed size is unknown) must be
        # complete by its framing, and every framed record must have been read (no CRC or inflate error).
        broken = tf.where(compressed, tf.logical_or(tf.logical_not(complete), tf.not_equal(count, framed)),
                          tf.not_equal(consumed, size))
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
                       num_parallel_calls=tf.data.AUTOTUNE, log_skips_each_epoch=True, start_position=None,
                       hard_negative_fraction=0.0, hard_negative_group=16):
    """Decoded images with their caption or class name, from any supported format.

    Args:
        paths: str (comma-separated, globs and `{000..009}` ranges allowed) or list of str: index files
            (csv/tsv/csvlabel/coco), ImageFolder roots, or tar / TFRecord shards (or directories of them). Index
            entries may name their own format, `FORMAT:PATH` (`index_entries`): captions and labels in one set.
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
        start_position: None (one epoch), or an int >= 0 for an endless positioned stream that starts there
            (training with a `seed` only; see the module docstring): each element gets `positions`, and the stream
            built with `start_position = p + 1` continues right after the element at position p.
        hard_negative_fraction: float in [0, 1]; in a positioned stream of an index format, this share of each
            epoch is ordered in groups of `hard_negative_group` examples whose captions (or class names) share a
            word (`keyed_shuffle.grouped_order`): in-batch hard negatives. Other formats (tar / TFRecord shards,
            read in a streaming order) log a warning and shuffle as usual.
        hard_negative_group: int >= 1, the size of those groups (at most the per-replica batch, for them to land
            in one batch).

    Returns:
        `tf.data.Dataset` of dicts: `images` uint8 `[H, W, 3]` (RGB), `texts` (caption or ""), `class_names`
        (class or ""), `sources` (str naming the example), and `positions` (int64) with `start_position`.
        A positioned stream ends only if a whole epoch yields nothing (every record skipped).

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
    if start_position is not None:
        if not isinstance(start_position, int) or isinstance(start_position, bool) or start_position < 0:
            raise ValueError(f"`start_position` must be None or an int >= 0. Received: start_position={start_position!r}")
        if not training or seed is None:
            raise ValueError("A positioned stream (`start_position`) is for training with a seed. "
                             f"Received: training={training!r}, seed={seed!r}")
    if not 0.0 <= hard_negative_fraction <= 1.0:
        raise ValueError(f"`hard_negative_fraction` must be in [0, 1]. Received: {hard_negative_fraction!r}")
    if not isinstance(hard_negative_group, int) or hard_negative_group < 1:
        raise ValueError(f"`hard_negative_group` must be an int >= 1. Received: {hard_negative_group!r}")
    skip_counter = dataset_stats if skip_counter is None else skip_counter
    num_shards, shard_id = _pipeline_shard(input_context)
    given_keys = (image_key, text_key)  # index entries take their own format's defaults (`_read_index`)
    default_image_key, default_text_key = _DEFAULT_KEYS.get(data_format, (None, None))
    image_key = image_key or default_image_key
    text_key = text_key or default_text_key
    file_seed = seed
    element_seed = None if seed is None else seed + 1

    if data_format in _INDEX_FORMATS:
        files = index_entries(paths, data_format)
        table = _index_table(files, image_root, given_keys, class_names, num_shards, shard_id, skip_counter)
        if table is None:
            raise ValueError(f"No examples listed in {files} for input pipeline {shard_id} of {num_shards}.")
        kind = guarded_decode.READ_FILE
        groups = None
        if hard_negative_fraction > 0 and start_position is not None:
            groups = _caption_groups(table) + (hard_negative_fraction, hard_negative_group)

        def epoch_pointers(epoch, first):
            if epoch is None:
                return _table_pointers(table, element_seed, training)
            return _permuted_table_pointers(table, seed, epoch, first, groups)
    else:
        if hard_negative_fraction > 0 and start_position is not None:
            logger.warning("Hard-negative groups need an index format (%s); %s shards are shuffled as usual.",
                           ", ".join(_INDEX_FORMATS), data_format)
        files = _record_files(paths, data_format)
        shard_elements = len(files) < num_shards
        if not shard_elements and num_shards > 1:
            files = files[shard_id::num_shards]
        file_columns = _file_columns(files, data_format)
        file_dataset = tf.data.Dataset.from_tensor_slices(file_columns)
        if data_format == "wds":
            extensions = (text_key,) if text_key else webdataset_index.TEXT_EXTENSIONS
            read = lambda item: _wds_pointers(item["paths"], skip_counter, extensions)  # noqa: E731
            kind = guarded_decode.READ_RANGE
        else:
            read = lambda item: _tfrecord_pointers(item["paths"], item["sizes"], item["compressed"])  # noqa: E731
            kind = guarded_decode.PARSE_EXAMPLE

        def epoch_pointers(epoch, first):
            # epoch None: one epoch, reshuffled each iteration; else epoch `epoch`'s own order (a pure function of
            # (seed, epoch), see keyed_shuffle), from index `first`.
            files_in_order = file_dataset
            if training and epoch is None:
                files_in_order = files_in_order.shuffle(len(files), seed=file_seed, reshuffle_each_iteration=True)
            elif training:
                files_in_order = keyed_shuffle.permute_slices(file_columns, tf.stack([tf.constant(file_seed, tf.int64),
                                                                                      epoch]))
            # Training mixes up to 8 files; evaluation reads them one after the other (file order, then record order).
            pointers = files_in_order.interleave(
                _plain(read), cycle_length=max(1, min(len(files), 8)) if training else 1,
                num_parallel_calls=num_parallel_calls, deterministic=True,
            )
            if shard_elements and num_shards > 1:
                pointers = pointers.shard(num_shards, shard_id)
            if training and epoch is None:
                pointers = pointers.shuffle(shuffle_buffer_size, seed=element_seed, reshuffle_each_iteration=True)
            elif training:
                pointers = keyed_shuffle.block_shuffle(
                    pointers, shuffle_buffer_size, tf.stack([tf.constant(element_seed, tf.int64), epoch]))
            if epoch is None:
                return pointers
            positioned = pointers.enumerate().map(
                _plain(lambda index, pointer: {**pointer, "positions": epoch * EPOCH_STRIDE + index}))
            return positioned.skip(first)  # pointers only: nothing before `first` is decoded

    example_keys = (
        image_key or tfrecord_example.IMAGE_KEY,
        text_key or tfrecord_example.TEXT_KEY,
        tfrecord_example.CLASS_KEY,
    )

    def decoded_epoch(epoch=None, first=None):
        dataset = guarded_decode.decode_pointers(
            epoch_pointers(epoch, first), kind, skip_counter, max_pixels=max_image_pixels, keep_encoded=keep_encoded,
            num_parallel_calls=num_parallel_calls, example_keys=example_keys,
        )
        if log_skips_each_epoch:
            dataset = dataset.concatenate(guarded_decode.epoch_end_logger(skip_counter, dataset.element_spec))
        return dataset

    if start_position is None:
        dataset = decoded_epoch()
    else:
        dataset = _positioned_stream(decoded_epoch, start_position)
    # Element order: tf.data's default (`deterministic` unset) is deterministic, and every order-keeping op above
    # says so itself; setting the option here would make a caller's `deterministic=False` log a warning.
    options = tf.data.Options()
    if input_context is not None:
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options)


def _positioned_stream(decoded_epoch, start_position):
    """Epochs `decoded_epoch(e, first)` one after the other from `start_position` on, until one yields nothing.

    Each epoch is followed by an end marker (a negative position); a scan counts the elements since the last marker,
    and the stream ends at the marker of a whole epoch that yielded nothing (every record skipped: a `.repeat()` stops
    there too).
    """
    start_epoch, start_index = split_position(start_position)

    def epoch_with_marker(epoch):
        first = tf.where(tf.equal(epoch, start_epoch), tf.constant(start_index, tf.int64), tf.constant(0, tf.int64))
        elements = decoded_epoch(epoch, first)
        marker = {key: tf.zeros([0 if dim is None else dim for dim in spec.shape], spec.dtype)
                  for key, spec in elements.element_spec.items()}
        # -2: the end of an epoch entered part-way (it may rightly yield nothing); -1: of a whole epoch.
        marker["positions"] = tf.where(first > 0, tf.constant(-2, tf.int64), tf.constant(-1, tf.int64))
        return elements.concatenate(tf.data.Dataset.from_tensors(marker))

    def count(since_marker, element):
        is_marker = element["positions"] < 0
        empty_epoch = tf.logical_and(tf.equal(element["positions"], -1), tf.equal(since_marker, 0))
        return tf.where(is_marker, tf.constant(0, tf.int64), since_marker + 1), (is_marker, empty_epoch, element)

    stream = tf.data.Dataset.range(start_epoch, _MAX_EPOCHS).flat_map(_plain(epoch_with_marker))
    stream = stream.scan(tf.constant(0, tf.int64), _plain(count))
    stream = stream.take_while(_plain(lambda is_marker, empty_epoch, element: tf.logical_not(empty_epoch)))
    stream = stream.filter(_plain(lambda is_marker, empty_epoch, element: tf.logical_not(is_marker)))
    return stream.map(_plain(lambda is_marker, empty_epoch, element: element))


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


def _file_columns(files, data_format):
    sizes = [tf.io.gfile.stat(path).length for path in files] if data_format == "tfrecord" else [0] * len(files)
    compressed = [path.endswith(".gz") for path in files]
    return {"paths": list(files), "sizes": np.array(sizes, np.int64),
            "compressed": np.array(compressed, bool)}


def count_listed_examples(paths, data_format, image_root=None, image_key=None, text_key=None, class_names=None):
    """How many examples index files (csv/tsv/csvlabel/coco) or ImageFolder trees list, without reading an image.

    A total for progress bars: `load_image_records` yields at most this many (bad ones are skipped). Shard formats
    (wds, tfrecord) give None: counting their records means reading them.

    Args:
        paths, data_format, image_root, image_key, text_key, class_names: as for `load_image_records`.

    Returns:
        int, or None for wds / tfrecord.
    """
    if data_format not in _INDEX_FORMATS:
        return None
    from florence_keras.data.skip_counter import SkipCounter  # what the listing leaves out is not reported twice

    per_file = _read_index(index_entries(paths, data_format), image_root, (image_key, text_key), class_names,
                           SkipCounter())
    return sum(len(entry[0]) for entry in per_file)

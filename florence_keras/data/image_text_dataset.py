"""The image-text input pipeline of UniCL pretraining: any supported format -> the raw data contract.

Yields `{"images": uint8 [S, S, 3], "texts": tf.string, "labels": int64}` (unbatched). Caption data gets
`labels = text_label(text)`; image-label data (ImageFolder, csvlabel, TFRecord `image/class/text`) gets a prompt
template drawn at random per read and `labels = class_label(class_name)` (SPEC §1).

Training transform: random-resized-crop + horizontal flip; a flipped image's text has left/right exchanged
[ours: the built-in captions name sides]. Evaluation transform: resize the shorter side, center crop.
With a `seed`, everything random (order, crops, flips, templates) is drawn from stateless per-element seeds, so the
pipeline is the same each time it is built — what deterministic, resumable training needs. A positioned stream
(`start_position`, see `image_records`) draws each element's randomness from its position, so a stream started at
position p is exactly the tail of one started at 0.
"""

import random

import tensorflow as tf

from florence_keras.data import image_transforms
from florence_keras.data import labels as labels_lib
from florence_keras.data.image_decoding import DEFAULT_MAX_PIXELS
from florence_keras.data.image_records import load_image_records


def load_image_text_dataset(paths, data_format, image_size=None, training=True, seed=None, input_context=None,
                            augment=True, templates=labels_lib.DEFAULT_TEMPLATES,
                            crop_scale=image_transforms.DEFAULT_CROP_SCALE,
                            crop_ratio=image_transforms.DEFAULT_CROP_RATIO, flip=True, flip_swaps_left_right=True,
                            antialias=True,
                            shuffle_buffer_size=1000, skip_counter=None, max_image_pixels=DEFAULT_MAX_PIXELS,
                            image_root=None, image_key=None, text_key=None, class_names=None,
                            num_parallel_calls=tf.data.AUTOTUNE, log_skips_each_epoch=True, keep_sources=False,
                            start_position=None, hard_negative_fraction=0.0, hard_negative_group=16,
                            dense_labels=None, dense_label_classes=None):
    """Image-text examples with UniCL labels from files on disk.

    Args:
        paths: str (comma-separated; globs and `{000..009}` ranges allowed) or list of str.
        data_format: `csv`, `tsv`, `csvlabel`, `coco`, `imagefolder`, `wds` or `tfrecord`.
        image_size: output side S; None keeps decoded images at their own size (no crop, no flip).
        training: shuffle every epoch and (with `augment`) apply random-resized-crop and flip.
        seed: int or None. With a seed the dataset is deterministic (same order, crops, flips, templates each
            time it is built; epochs differ from each other). Without one, training data is random; evaluation
            data (`training=False`) always uses seed 0.
        input_context: `tf.distribute.InputContext`: this pipeline reads its share (by file or by element).
        augment: apply the training transform when `training`; False uses the evaluation transform.
        templates: prompt templates for image-label data (str with one `{}`), e.g. `labels.imagenet_templates()`.
        crop_scale: random-resized-crop area range.
        crop_ratio: random-resized-crop aspect-ratio range.
        flip: random horizontal flip in the training transform.
        flip_swaps_left_right: exchange the words left/right in the text of a flipped image.
        antialias: filter when downscaling (as PIL / torchvision); False roughly halves the resize cost.
        shuffle_buffer_size: element shuffle buffer for tar / TFRecord data.
        skip_counter: `SkipCounter` for skipped examples (default `florence_keras.data.dataset_stats`).
        max_image_pixels: refuse images whose header declares more pixels (decompression bombs).
        image_root: image directory for csv/tsv/csvlabel/coco (default: the index file's directory).
        image_key: csv image column / TFRecord image feature name.
        text_key: csv text (or label) column / TFRecord caption feature / wds text extension.
        class_names: csvlabel: list mapping integer labels to class names.
        num_parallel_calls: parallelism of decoding and transforms.
        log_skips_each_epoch: log one line at the end of each epoch if new examples were skipped.
        keep_sources: also yield `sources`, a str naming each example (path, `shard.tar:key`, `file#index`).
        start_position: None (one epoch), or an int >= 0: an endless positioned stream starting there (training with
            a `seed`; see `load_image_records`), whose elements carry `positions` (int64).
        hard_negative_fraction, hard_negative_group: in a positioned stream of an index format, order this share
            of each epoch in groups of examples whose captions share a word (`load_image_records`).
        dense_labels: None, or a callable mapping the image paths (`tf.string`, the records' `sources`) to the
            paths of their dense label maps: PNGs (1, 3 or 4 channels) of the image's height and width whose
            channel k holds class indices in `[0, dense_label_classes[k])` (the built-in data's:
            `builtin_dataset.dense_label_path`).
            Each map gets its image's crop, resize and flip, as one-hot channels resized bilinearly, so each
            output pixel holds the fraction of each class under it.
        dense_label_classes: with `dense_labels`, the classes per channel of the label maps (the built-in data's:
            `builtin_dataset.dense_label_classes`).

    Returns:
        `tf.data.Dataset` of `{"images": uint8 [S, S, 3], "texts": tf.string, "labels": int64}` (+ `sources`,
        + `positions` with `start_position`, + `dense_labels`: float32 `[S, S, sum(dense_label_classes)]` with
        `dense_labels`).

    Example:
    >>> import tempfile
    >>> from florence_keras.data.builtin_dataset import write_builtin_dataset
    >>> paths = write_builtin_dataset(tempfile.mkdtemp(), num_train=8, num_heldout=0, formats=("csv",))
    >>> batch = next(iter(load_image_text_dataset(paths["csv"]["train"], "csv", image_size=32, seed=0).batch(8)))
    >>> batch["images"].shape, batch["texts"].dtype.name, batch["labels"].dtype.name
    (TensorShape([8, 32, 32, 3]), 'string', 'int64')
    """
    if image_size is not None and (not isinstance(image_size, int) or image_size <= 0):
        raise ValueError(f"`image_size` must be a positive int or None. Received: image_size={image_size!r}")
    labels_lib.validate_templates(templates)
    templates = tuple(templates)
    if dense_labels is not None:
        if not callable(dense_labels):
            raise ValueError(f"`dense_labels` must be None or a callable (image paths -> label map paths). "
                             f"Received: dense_labels={dense_labels!r}")
        if image_size is None:
            raise ValueError("`dense_labels` needs an `image_size` (the maps are cropped and resized with the images).")
        if not dense_label_classes or any(not isinstance(c, int) or c < 1 for c in dense_label_classes):
            raise ValueError(f"`dense_label_classes` must be a non-empty list of positive ints, one per label map "
                             f"channel. Received: dense_label_classes={dense_label_classes!r}")
        dense_label_classes = tuple(dense_label_classes)
        if len(dense_label_classes) not in (1, 3, 4):
            raise ValueError(f"The label maps are PNGs of 1, 3 or 4 channels, one kind of label each. Received "
                             f"{len(dense_label_classes)} kinds: dense_label_classes={dense_label_classes!r}")
    if seed is None and not training:
        seed = 0
    records = load_image_records(
        paths, data_format, training=training, seed=seed, input_context=input_context,
        shuffle_buffer_size=shuffle_buffer_size, skip_counter=skip_counter, max_image_pixels=max_image_pixels,
        image_root=image_root, image_key=image_key, text_key=text_key, class_names=class_names,
        num_parallel_calls=num_parallel_calls, log_skips_each_epoch=log_skips_each_epoch,
        start_position=start_position, hard_negative_fraction=hard_negative_fraction,
        hard_negative_group=hard_negative_group,
    )
    random_seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    if input_context is not None:
        random_seed += 1_000_003 * input_context.input_pipeline_id
    random_transform = training and augment and image_size is not None

    def transform(record, element_seed):
        template_seed, crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(element_seed, 3))
        is_class = tf.strings.length(record["class_names"]) > 0
        text = tf.cond(
            is_class,
            lambda: labels_lib.fill_random_template(record["class_names"], template_seed, templates),
            lambda: record["texts"],
        )
        image = record["images"]
        label_map = _read_dense_labels(record["sources"], image) if dense_labels is not None else None
        if random_transform:
            window = image_transforms.random_crop_window(tf.shape(image), crop_seed, crop_scale, crop_ratio)
            image = image_transforms.random_resized_crop(image, image_size, crop_seed, crop_scale, crop_ratio,
                                                         antialias)
            if label_map is not None:
                label_map = image_transforms.resized_crop(label_map, *window, image_size, antialias)
            if flip:
                image, text = image_transforms.random_flip(image, text, flip_seed, flip_swaps_left_right)
                if label_map is not None:
                    label_map = tf.cond(image_transforms.flip_decision(flip_seed),
                                        lambda: tf.reverse(label_map, axis=[1]), lambda: label_map)
        elif image_size is not None:
            image = image_transforms.resize_center_crop(image, image_size, antialias)
            if label_map is not None:
                label_map = image_transforms.center_crop_float(label_map, image_size, antialias)
        label = tf.where(is_class, labels_lib.class_label(record["class_names"]), labels_lib.text_label(text))
        output = {"images": image, "texts": text, "labels": label}
        if label_map is not None:
            output["dense_labels"] = tf.ensure_shape(label_map, [image_size, image_size, sum(dense_label_classes)])
        if keep_sources:
            output["sources"] = record["sources"]
        if start_position is not None:
            output["positions"] = record["positions"]
        return output

    def _read_dense_labels(source, image):
        path = dense_labels(source)
        codes = tf.io.decode_png(tf.io.read_file(path), channels=len(dense_label_classes))
        tf.debugging.assert_equal(
            tf.shape(codes)[:2], tf.shape(image)[:2],
            message=tf.strings.join(["The dense label map ", path, " is not the size of its image ", source]))
        tf.debugging.assert_less(
            tf.cast(codes, tf.int32), tf.constant(dense_label_classes, tf.int32),
            message=tf.strings.join(["The dense label map ", path, " holds a class index out of range"]))
        return image_transforms.one_hot_channels(codes, dense_label_classes)

    if start_position is None:
        element_seeds = tf.data.Dataset.random(seed=random_seed + 2, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(records, element_seeds)
    else:  # each element's draws follow from its position
        dataset = records.map(tf.autograph.experimental.do_not_convert(
            lambda record: (record, tf.stack([tf.constant(random_seed + 2, tf.int64), record["positions"]]))))
    transform = tf.autograph.experimental.do_not_convert(transform)  # plain TF code: skip AutoGraph, build faster
    return dataset.map(transform, num_parallel_calls=num_parallel_calls, deterministic=True)

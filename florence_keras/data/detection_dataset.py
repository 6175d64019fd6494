"""Box-preserving augmentation and the detection training stream (tf.data, static shapes)."""

import tensorflow as tf

_plain = tf.autograph.experimental.do_not_convert


def augment_detection(image, boxes, box_mask, image_size, seed=None, flip=True, scale_range=(1.0, 1.0),
                      min_visible=0.3, hue_delta=0.0):
    """Fits an image into `image_size × image_size` and moves its boxes with it.

    The image is resized by `s = image_size / max(H, W) × j` (bilinear, antialiased; j the scale jitter,
    uniform in `scale_range`), optionally flipped left-right, then placed on a zero canvas: a smaller image at
    a random offset, a larger one cropped at a random offset. Boxes are scaled, flipped, shifted and clipped
    to the canvas; a box keeping less than `min_visible` of its area (or less than a pixel a side) is masked
    out. With `seed=None` nothing is random: no flip, j = 1, placed at the top-left — exactly
    `FlorenceDetector.detection_inputs`'s resize and pad.

    Args:
        image: uint8 or float `(H, W, 3)`, values in [0, 255].
        boxes: float32 `(M, 4)` `xyxy` image pixels; box_mask: float32 `(M,)`.
        image_size: int, the output side S.
        seed: int32/int64 `(2,)` stateless seed, or None (no randomness).
        flip: bool, random left-right flip (with a seed).
        scale_range: `(low, high)` of the scale jitter (with a seed).
        min_visible: float in [0, 1], the smallest kept fraction of a cropped box.
        hue_delta: float in [0, 0.5], random hue rotation (with a seed; boxes unaffected). 0.5 makes any hue
            equally likely, so a class cannot be told by its colour.

    Returns:
        `(image float32 (S, S, 3), boxes float32 (M, 4), box_mask float32 (M,))`.
    """
    low, high = scale_range
    if not 0 < low <= high:
        raise ValueError(f"`scale_range` must be 0 < low <= high. Received: scale_range={scale_range!r}")
    image = tf.cast(image, tf.float32)
    boxes = tf.cast(boxes, tf.float32)
    box_mask = tf.cast(box_mask, tf.float32)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    fheight, fwidth = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    size = tf.constant(image_size, tf.int32)
    if seed is not None:
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
        jitter = tf.random.stateless_uniform([], seeds[0], low, high)
        flipped = tf.logical_and(tf.constant(flip), tf.random.stateless_uniform([], seeds[1]) < 0.5)
    else:
        jitter, flipped = tf.constant(1.0), tf.constant(False)
    scale = float(image_size) / tf.maximum(fheight, fwidth) * jitter
    new_height = tf.maximum(tf.cast(tf.round(fheight * scale), tf.int32), 1)
    new_width = tf.maximum(tf.cast(tf.round(fwidth * scale), tf.int32), 1)
    image = tf.image.resize(image, tf.stack([new_height, new_width]), method="bilinear", antialias=True)
    scale_x = tf.cast(new_width, tf.float32) / fwidth
    scale_y = tf.cast(new_height, tf.float32) / fheight
    boxes = boxes * tf.stack([scale_x, scale_y, scale_x, scale_y])
    new_w = tf.cast(new_width, tf.float32)
    image = tf.cond(flipped, lambda: tf.reverse(image, [1]), lambda: image)
    boxes = tf.cond(flipped, lambda: tf.stack([new_w - boxes[:, 2], boxes[:, 1], new_w - boxes[:, 0], boxes[:, 3]],
                                              axis=1), lambda: boxes)
    room_y, room_x = tf.maximum(size - new_height, 0), tf.maximum(size - new_width, 0)
    over_y, over_x = tf.maximum(new_height - size, 0), tf.maximum(new_width - size, 0)
    if seed is not None:
        def offset(limit, key):
            return tf.random.stateless_uniform([], key, 0, limit + 1, dtype=tf.int32)
        pad_y, pad_x = offset(room_y, seeds[2]), offset(room_x, seeds[3])
        crop_y = offset(over_y, tf.random.experimental.stateless_fold_in(seeds[2], 1))
        crop_x = offset(over_x, tf.random.experimental.stateless_fold_in(seeds[3], 1))
    else:
        pad_y = pad_x = crop_y = crop_x = tf.constant(0, tf.int32)
    image = tf.image.pad_to_bounding_box(image, pad_y, pad_x, new_height + room_y, new_width + room_x)
    image = tf.image.crop_to_bounding_box(image, crop_y, crop_x, image_size, image_size)
    if seed is not None and hue_delta > 0:
        hue_seed = tf.random.experimental.stateless_fold_in(seeds[0], 7)
        image = 255.0 * tf.image.stateless_random_hue(image / 255.0, hue_delta, tf.cast(hue_seed, tf.int32))
    shift_x = tf.cast(pad_x - crop_x, tf.float32)
    shift_y = tf.cast(pad_y - crop_y, tf.float32)
    moved = boxes + tf.stack([shift_x, shift_y, shift_x, shift_y])
    clipped = tf.clip_by_value(moved, 0.0, float(image_size))
    area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    clipped_w, clipped_h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (clipped_w >= 1.0) & (clipped_h >= 1.0) & (clipped_w * clipped_h >= min_visible * area)
    box_mask = box_mask * tf.cast(keep, tf.float32)
    clipped = clipped * box_mask[:, None]
    return tf.ensure_shape(image, [image_size, image_size, 3]), clipped, box_mask


def decode_rgb(path):
    """The file's image as uint8 `(H, W, 3)` (JPEG/PNG/GIF/BMP; gray repeated, alpha dropped)."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])


def detection_dataset(records, image_size, batch_size, normalize, seed=0, augment=True, repeat=True,
                      scale_range=(0.75, 1.25), flip=True, cache="auto", drop_remainder=True, hue_delta=0.0):
    """A tf.data stream of detection batches from `load_coco_detection`'s records.

    Batches: `{"images": normalised float32 (B, S, S, 3), "boxes": float32 (B, M, 4) xyxy pixels of the S × S
    input, "classes": int32 (B, M), "box_mask": float32 (B, M)}` (static M: the trainer needs static shapes).

    Args:
        records: dict with `paths`, `boxes`, `classes`, `box_mask` (see `load_coco_detection`).
        image_size: int, S.
        batch_size: int.
        normalize: callable on float `(B, S, S, 3)` in [0, 255] -> normalised (the preset's image converter's
            `normalizer()`).
        seed: int; the shuffle order and each example's augmentation follow from it.
        augment: bool, random flip / scale jitter / placement-crop (`augment_detection`).
        repeat: bool, repeat and shuffle for ever (training) or one pass in order (evaluation).
        scale_range, flip, hue_delta: the augmentation's (see `augment_detection`).
        cache: bool, keep the decoded images in memory; "auto": when there are at most 20,000 images.
        drop_remainder: bool.
    """
    paths = tf.constant(records["paths"])
    dataset = tf.data.Dataset.from_tensor_slices({
        "path": paths, "boxes": records["boxes"], "classes": records["classes"], "box_mask": records["box_mask"]})

    @_plain
    def load(example):
        return dict(example, image=decode_rgb(example["path"]))

    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if cache is True or (cache == "auto" and len(records["paths"]) <= 20000):
        dataset = dataset.cache()
    if repeat:
        dataset = dataset.repeat().shuffle(min(len(records["paths"]), 4096), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.enumerate()

    @_plain
    def transform(index, example):
        example_seed = tf.stack([tf.cast(seed, tf.int64), index]) if (augment and repeat) else None
        image, boxes, mask = augment_detection(example["image"], example["boxes"], example["box_mask"], image_size,
                                               seed=example_seed, flip=flip, scale_range=scale_range,
                                               hue_delta=hue_delta)
        return {"images": image, "boxes": boxes, "classes": example["classes"], "box_mask": mask}

    dataset = dataset.map(transform, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

    @_plain
    def finish(batch):
        return dict(batch, images=tf.cast(normalize(batch["images"]), tf.float32))

    return dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)

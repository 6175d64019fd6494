"""Geometric augmentation applied identically to an image and its depth map, and the depth training stream."""

import tensorflow as tf

_plain = tf.autograph.experimental.do_not_convert


def augment_depth_pair(image, depth, seed, max_shift=0.125, flip=True, max_vertical_shift=None):
    """A random horizontal flip and translation, the same for the image and its depth.

    Translation pads by `round(max_shift · size)` pixels left and right and `round(max_vertical_shift · size)`
    above and below (image: edge pixels mirrored; depth: 0 = invalid, so the padding is never learned as depth)
    and crops the original size at a random offset. No zoom: scaling an image changes the apparent distance,
    which a metric-depth model must read from the image [ours]. A vertical shift moves the horizon, so where a
    fixed camera makes depth a function of the row (the built-in ground-plane scenes, a car's camera), leave it
    at 0.

    Args:
        image: uint8 or float `(S, S, 3)`.
        depth: float32 `(S, S)`.
        seed: int32 `(2,)` stateless seed.
        max_shift: float in [0, 0.5), the largest horizontal shift as a fraction of the side.
        flip: bool.
        max_vertical_shift: float in [0, 0.5), the largest vertical shift; None: `max_shift`.

    Returns:
        `(image, depth)` of the input shapes and dtypes.
    """
    if not 0.0 <= max_shift < 0.5:
        raise ValueError(f"`max_shift` must be in [0, 0.5). Received: max_shift={max_shift!r}")
    max_vertical_shift = max_shift if max_vertical_shift is None else max_vertical_shift
    if not 0.0 <= max_vertical_shift < 0.5:
        raise ValueError(f"`max_vertical_shift` must be in [0, 0.5). Received: "
                         f"max_vertical_shift={max_vertical_shift!r}")
    image_shape = image.shape  # static where known: the crop below must not lose it
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    depth = depth[..., None]
    if flip:
        flipped = tf.random.stateless_uniform([], seeds[0]) < 0.5
        image = tf.cond(flipped, lambda: tf.reverse(image, [1]), lambda: image)
        depth = tf.cond(flipped, lambda: tf.reverse(depth, [1]), lambda: depth)
    pad_y = int(round(max_vertical_shift * image.shape[0])) if image.shape[0] else 0
    pad_x = int(round(max_shift * image.shape[1])) if image.shape[1] else 0
    if pad_y or pad_x:
        paddings = [[pad_y, pad_y], [pad_x, pad_x], [0, 0]]
        padded_image = tf.pad(image, paddings, mode="SYMMETRIC")
        padded_depth = tf.pad(depth, paddings)
        offsets = tf.random.stateless_uniform([2], seeds[1], 0, tf.int32.max, dtype=tf.int32) % tf.constant(
            [2 * pad_y + 1, 2 * pad_x + 1])
        image = padded_image[offsets[0]:offsets[0] + height, offsets[1]:offsets[1] + width]
        depth = padded_depth[offsets[0]:offsets[0] + height, offsets[1]:offsets[1] + width]
    image = tf.ensure_shape(image, image_shape)
    return image, tf.ensure_shape(depth[..., 0], image_shape[:2])


def depth_dataset(images, depth, batch_size, normalize, seed=0, augment=True, repeat=True, max_shift=0.125,
                  drop_remainder=True, max_vertical_shift=None):
    """A tf.data stream of `{"images": normalised float32 (B, S, S, 3), "depth": float32 (B, S, S)}`.

    Args:
        images: uint8 `(N, S, S, 3)`; depth: float32 `(N, S, S)` (e.g. from `load_depth_pairs`).
        batch_size: int.
        normalize: callable on uint8/float `(B, S, S, 3)` images -> normalised float (the preset converter's
            `normalizer()`).
        seed: int; the shuffle order and each example's augmentation follow from it (and the epoch).
        augment: bool, `augment_depth_pair` on each example.
        repeat: bool, repeat for ever (training) or one pass (evaluation, in order, no shuffle).
        max_shift, max_vertical_shift: see `augment_depth_pair`.
        drop_remainder: bool.

    The batches are what `FlorenceDepthEstimator.check_training_batch` asks the trainer for.
    """
    count = int(images.shape[0])
    dataset = tf.data.Dataset.from_tensor_slices({"images": images, "depth": depth})
    if repeat:
        dataset = dataset.repeat().shuffle(min(count, 4096), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.enumerate()

        @_plain
        def with_seed(index, example):
            return example, tf.stack([tf.cast(seed, tf.int64), index])
        dataset = dataset.map(with_seed)
        if augment:
            @_plain
            def augment_one(example, example_seed):
                image, d = augment_depth_pair(example["images"], example["depth"], example_seed, max_shift=max_shift,
                                              max_vertical_shift=max_vertical_shift)
                return {"images": image, "depth": d}
            dataset = dataset.map(augment_one, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            dataset = dataset.map(_plain(lambda example, _: example))
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

    @_plain
    def finish(batch):
        return {"images": tf.cast(normalize(batch["images"]), tf.float32),
                "depth": tf.cast(batch["depth"], tf.float32)}

    return dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)

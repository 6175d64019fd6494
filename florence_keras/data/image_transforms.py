"""Stateless image transforms for the tf.data readers (uint8 in, uint8 out).

All randomness is stateless (`tf.random.stateless_*` with an explicit `[2]` seed), so a pipeline built with a
seed produces the same crops and flips every time it is rebuilt — what deterministic, resumable training needs.
"""

import tensorflow as tf

# [ours, as open_clip] Random-resized-crop area range: mild, so that captions naming every object stay true.
DEFAULT_CROP_SCALE = (0.9, 1.0)
# [ours] Aspect jitter of the crop, width / height: +-10%, far from 3/4 — squeezing an image by 3/4 would turn the
# built-in "square" into a "diamond"-like aspect (the diamond is a square scaled 0.75 across), and any small real
# set's shapes are distorted less. (torchvision's default is 3/4..4/3.)
DEFAULT_CROP_RATIO = (0.9, 1.0 / 0.9)


def _to_uint8(image):
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _check_size(size):
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"`size` must be a positive int. Received: size={size!r}")


def random_crop_window(image_shape, seed, scale=DEFAULT_CROP_SCALE, ratio=DEFAULT_CROP_RATIO):
    """The window `random_resized_crop` takes: a random area (fraction `scale` of the image, aspect `ratio`).

    Falls back to the whole image when no window fits in 10 attempts. Apply it to any map aligned with the image
    (`resized_crop`) to crop both the same way.

    Args:
        image_shape: int `[3]`, `(H, W, C)`.
        seed: int `[2]` stateless seed.
        scale: `(min, max)` fraction of the image area.
        ratio: `(min, max)` crop aspect ratio, width / height.

    Returns:
        `(begin, size)`: int32 `[3]` each, for `tf.slice`.
    """
    if not (0.0 < scale[0] <= scale[1] <= 1.0):
        raise ValueError(f"`scale` must satisfy 0 < min <= max <= 1. Received: scale={scale!r}")
    if not (0.0 < ratio[0] <= ratio[1]):
        raise ValueError(f"`ratio` must satisfy 0 < min <= max. Received: ratio={ratio!r}")
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape,
        bounding_boxes=tf.zeros([1, 0, 4], tf.float32),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=tuple(ratio),
        area_range=tuple(scale),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return begin, crop_size


def resized_crop(image, begin, crop_size, size, antialias=True):
    """Crops `image` to the window `(begin, crop_size)` and resizes it bilinearly to `size x size`.

    Args:
        image: `[H, W, C]`, any dtype; the result is float32 (not rounded), so a one-hot map comes back as the
            fraction of each class under each output pixel.
        begin, crop_size: int `[3]`, e.g. from `random_crop_window` (the channel entries are 0 and -1).
        size: int, output side.
        antialias: filter when downscaling.

    Returns:
        float32 `[size, size, C]`.
    """
    crop = tf.slice(image, begin, crop_size)
    return tf.image.resize(tf.cast(crop, tf.float32), [size, size], method="bilinear", antialias=antialias)


def random_resized_crop(image, size, seed, scale=DEFAULT_CROP_SCALE, ratio=DEFAULT_CROP_RATIO, antialias=True):
    """Crops a random area (fraction `scale` of the image, aspect `ratio`) and resizes it to `size x size`.

    Falls back to the whole image when no crop fits in 10 attempts (`random_crop_window`).

    Args:
        image: uint8 `[H, W, 3]`.
        size: int, output side.
        seed: int `[2]` stateless seed.
        scale: `(min, max)` fraction of the image area.
        ratio: `(min, max)` crop aspect ratio, width / height.
        antialias: filter when downscaling (as PIL / torchvision do); False is about 2x cheaper at 224 px.

    Returns:
        uint8 `[size, size, 3]`.
    """
    _check_size(size)
    begin, crop_size = random_crop_window(tf.shape(image), seed, scale, ratio)
    return tf.ensure_shape(_to_uint8(resized_crop(image, begin, crop_size, size, antialias)), [size, size, 3])


def resize_center_crop(image, size, antialias=True):
    """Resizes the shorter side to `size` and takes the central `size x size` crop (evaluation transform).

    Args:
        image: uint8 `[H, W, 3]`.
        size: int, output side.
        antialias: filter when downscaling.

    Returns:
        uint8 `[size, size, 3]`.
    """
    _check_size(size)
    return tf.ensure_shape(_to_uint8(center_crop_float(image, size, antialias)), [size, size, 3])


def center_crop_float(image, size, antialias=True):
    """`resize_center_crop` of any `[H, W, C]` map, as float32 and not rounded (an aligned one-hot map comes back
    as class fractions)."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    factor = float(size) / tf.reduce_min(shape)
    new_shape = tf.maximum(tf.cast(tf.round(shape * factor), tf.int32), size)
    resized = tf.image.resize(tf.cast(image, tf.float32), new_shape, method="bilinear", antialias=antialias)
    top = (new_shape[0] - size) // 2
    left = (new_shape[1] - size) // 2
    return resized[top : top + size, left : left + size]


def resize_shorter_side(image, size):
    """Resizes so the shorter side is at most `size`, keeping the aspect ratio (never upscales).

    Args:
        image: uint8 `[H, W, 3]`.
        size: int, the largest allowed shorter side.

    Returns:
        `(image, resized)`: uint8 `[H', W', 3]` and a bool scalar, whether the image was changed.
    """
    _check_size(size)
    shape = tf.shape(image)[:2]
    shorter = tf.reduce_min(shape)
    needs_resize = shorter > size

    def resize():
        factor = float(size) / tf.cast(shorter, tf.float32)
        new_shape = tf.maximum(tf.cast(tf.round(tf.cast(shape, tf.float32) * factor), tf.int32), 1)
        return _to_uint8(tf.image.resize(image, new_shape, method="bilinear", antialias=True))

    return tf.cond(needs_resize, resize, lambda: image), needs_resize


def swap_left_right(texts):
    """Exchanges the words left/right (and Left/Right) in texts — the caption of a horizontally flipped image.

    Args:
        texts: `tf.string` tensor.

    Returns:
        `tf.string` tensor of the same shape.

    Example:
    >>> swap_left_right("a circle on the left, right of a star").numpy()
    b'a circle on the right, left of a star'
    """
    texts = tf.convert_to_tensor(texts, tf.string)
    pairs = (("left", "right"), ("right", "left"), ("Left", "Right"), ("Right", "Left"))
    for i, (word, _) in enumerate(pairs):
        texts = tf.strings.regex_replace(texts, rf"\b{word}\b", chr(1) + str(i) + chr(1))
    for i, (_, replacement) in enumerate(pairs):
        texts = tf.strings.regex_replace(texts, chr(1) + str(i) + chr(1), replacement)
    return texts


def flip_decision(seed):
    """Whether `random_flip` with this seed flips: a bool scalar (probability 1/2)."""
    return tf.random.stateless_uniform([], seed=seed) < 0.5


def random_flip(image, text, seed, swap_text=True):
    """Flips an image horizontally with probability 1/2, swapping left/right in its text if asked.

    Args:
        image: uint8 `[H, W, 3]`.
        text: scalar `tf.string`.
        seed: int `[2]` stateless seed (`flip_decision(seed)` says whether it flips: flip an aligned map with it).
        swap_text: exchange the words left and right in the text of a flipped image.

    Returns:
        `(image, text)`.
    """
    image = tf.convert_to_tensor(image)
    text = tf.convert_to_tensor(text, tf.string)
    flip = flip_decision(seed)
    image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    if swap_text:
        text = tf.cond(flip, lambda: swap_left_right(text), lambda: text)
    return image, text


def one_hot_channels(label_map, class_counts):
    """A map of class indices, one channel per kind of label, as concatenated one-hot channels.

    Args:
        label_map: integer `[H, W, K]`, channel k holding class indices in `[0, class_counts[k])`.
        class_counts: K ints.

    Returns:
        float32 `[H, W, sum(class_counts)]`.

    Example:
    >>> one_hot_channels([[[1, 0]]], (2, 3)).numpy().tolist()
    [[[0.0, 1.0, 1.0, 0.0, 0.0]]]
    """
    label_map = tf.cast(tf.convert_to_tensor(label_map), tf.int32)
    return tf.concat([tf.one_hot(label_map[..., k], int(count)) for k, count in enumerate(class_counts)], axis=-1)


# [ours] Chromatic colour words: a greyscale image no longer shows them, so `random_greyscale` removes them from its
# caption. Achromatic words (black, white, grey) stay true of a greyscale image and are kept.
CHROMATIC_COLOUR_WORDS = (
    "red", "green", "blue", "yellow", "purple", "orange", "cyan", "pink", "brown", "violet", "magenta", "turquoise",
    "teal", "lime", "maroon", "navy", "beige", "gold", "golden", "olive", "indigo", "crimson", "scarlet",
)


def remove_colour_words(texts, words=CHROMATIC_COLOUR_WORDS):
    """Removes colour adjectives (a colour word followed by another word) and re-agrees the articles.

    "a photo of an orange circle" -> "a photo of a circle"; "a red object" -> "an object". A colour word not
    followed by a word (a noun, as in "I like red") is kept.

    Args:
        texts: str or `tf.string` tensor of any shape.
        words: the colour words (matched case-insensitively, whole words).

    Returns:
        `tf.string` tensor of the same shape.

    Example:
    >>> remove_colour_words(["a photo of an orange circle", "two objects: a red star and a Blue ring"]).numpy()
    array([b'a photo of a circle', b'two objects: a star and a ring'], dtype=object)
    """
    from florence_keras.data.labels import fix_indefinite_articles

    if not words:
        return tf.convert_to_tensor(texts, tf.string)
    pattern = r"\b(?i:" + "|".join(sorted(words, key=len, reverse=True)) + r")\s+([A-Za-z])"
    return fix_indefinite_articles(tf.strings.regex_replace(tf.convert_to_tensor(texts, tf.string), pattern, r"\1"))


def random_greyscale(image, text, seed, probability, words=CHROMATIC_COLOUR_WORDS):
    """With probability `probability`, converts an image to greyscale and removes colour words from its text.

    The caption stays true of the pixels: a greyscale "red circle" is captioned "a circle".

    Args:
        image: uint8 `[H, W, 3]`.
        text: scalar `tf.string`.
        seed: int `[2]` stateless seed.
        probability: float in [0, 1].
        words: colour words removed from the text of a greyscale image (`remove_colour_words`).

    Returns:
        `(image, text, applied)`: uint8 `[H, W, 3]`, scalar `tf.string` and a bool scalar.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"`probability` must be in [0, 1]. Received: probability={probability!r}")
    image = tf.convert_to_tensor(image)
    text = tf.convert_to_tensor(text, tf.string)
    applied = tf.random.stateless_uniform([], seed=seed) < probability
    grey = tf.image.grayscale_to_rgb(_to_uint8(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))))
    return (tf.where(applied, grey, image), tf.where(applied, remove_colour_words(text, words), text), applied)

"""Checked image decoding for the tf.data readers: header inspection before decoding, reasons for failures.

`decode_image_checked` reads the image format and size from the first bytes *in the graph* (no Python) and
decodes only images of a known format whose header-declared size is within a pixel limit, so a decompression bomb
is refused before any memory is allocated for it. Failures it can see (empty data, unknown format, bad or too large
size) come back as a reason code; failures only the decoder can see (truncated or corrupt data) raise inside the
decoder and are caught by the reader (see `guarded_decode.py`), which then asks `classify_undecodable` for the reason.

Supported formats are those of `tf.io.decode_image`: JPEG, PNG (8/16-bit), GIF (first frame), BMP, WebP.
Grayscale and RGBA images come out as RGB (alpha is dropped, as PIL's `convert("RGB")` does).
"""

import tensorflow as tf

# Default refusal limit, in pixels of the header-declared size (PIL warns at 89M and refuses at 179M).
DEFAULT_MAX_PIXELS = 100_000_000

# Reason codes produced in the graph.
OK = 0
EMPTY = 1
NOT_AN_IMAGE = 2
TOO_LARGE = 3
BAD_HEADER = 4
NO_TEXT = 5
DECODE_ERROR = 6  # raised by the decoder or the reader; `classify_undecodable` refines it in Python
CORRUPT_FILE = 7  # a record file (TFRecord) that could not be read to its end
BAD_TEXT = 8  # a caption or class name that is not valid UTF-8
REASON_NAMES = {
    OK: "ok",
    EMPTY: "empty",
    NOT_AN_IMAGE: "not_an_image",
    TOO_LARGE: "too_large",
    BAD_HEADER: "corrupt",
    NO_TEXT: "no_text",
    DECODE_ERROR: "corrupt",
    CORRUPT_FILE: "corrupt_file",
    BAD_TEXT: "bad_text",
}

# Format codes.
UNKNOWN_FORMAT, JPEG, PNG, GIF, BMP, WEBP = 0, 1, 2, 3, 4, 5

_HEAD_BYTES = 32
# Magic numbers: (format, bytes at offsets 0..11, None = any byte).
_MAGIC = (
    (JPEG, b"\xff\xd8\xff"),
    (PNG, b"\x89PNG\r\n\x1a\n"),
    (GIF, b"GIF8"),
    (BMP, b"BM"),
    (WEBP, b"RIFF\0\0\0\0WEBP"),
)
_MAGIC_LENGTH = 12


def _magic_tables():
    patterns, masks = [], []
    for code, magic in _MAGIC:
        pattern = list(magic.ljust(_MAGIC_LENGTH, b"\0"))
        mask = [1 if i < len(magic) else 0 for i in range(_MAGIC_LENGTH)]
        if code == WEBP:
            mask[4:8] = [0, 0, 0, 0]  # the RIFF size
        patterns.append(pattern)
        masks.append(mask)
    return patterns, masks


# Header integer fields: name -> (offset, number of bytes, little endian).
_FIELDS = {
    "png_w": (16, 4, False), "png_h": (20, 4, False),
    "gif_w": (6, 2, True), "gif_h": (8, 2, True),
    "bmp_header": (14, 4, True), "bmp_w": (18, 4, True), "bmp_h": (22, 4, True),
    "bmp_w16": (18, 2, True), "bmp_h16": (20, 2, True),
    "vp8x_w": (24, 3, True), "vp8x_h": (27, 3, True),
    "vp8l_bits": (21, 4, True),
    "vp8_w": (26, 2, True), "vp8_h": (28, 2, True),
    "chunk": (12, 4, False),
}
_FIELD_NAMES = tuple(_FIELDS)


def _field_tables():
    indices, weights = [], []
    for name in _FIELD_NAMES:
        offset, size, little = _FIELDS[name]
        positions = [offset + i for i in range(size)] + [_HEAD_BYTES] * (4 - size)  # _HEAD_BYTES: a zero byte
        scale = [256**i for i in range(size)] if little else [256 ** (size - 1 - i) for i in range(size)]
        indices.append(positions)
        weights.append(scale + [0] * (4 - size))
    return indices, weights


def _fourcc(text):
    return int.from_bytes(text, "big")


def image_header(data):
    """Format and header-declared size of encoded image bytes, without decoding.

    JPEG takes a short path (`tf.image.extract_jpeg_shape`); other formats a vectorised one, because this runs
    once per image inside `tf.data`.

    Args:
        data: scalar `tf.string`, the encoded image.

    Returns:
        `(format_code, height, width)`: int32 scalar (`UNKNOWN_FORMAT`, `JPEG`, `PNG`, `GIF`, `BMP`, `WEBP`) and two
        int64 scalars (0 for an unknown format). A JPEG whose header can't be parsed raises `InvalidArgumentError`.

    Example:
    >>> import numpy as np
    >>> png = tf.io.encode_png(np.zeros((3, 5, 1), np.uint8))
    >>> [int(v) for v in image_header(png)]
    [2, 3, 5]
    """
    data = tf.convert_to_tensor(data, tf.string)
    is_jpeg = tf.equal(tf.strings.substr(data, 0, 3), b"\xff\xd8\xff")

    def jpeg():  # the common case, kept to a few ops
        size = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return tf.constant(JPEG), size[0], size[1]

    def other():
        return _other_header(data)

    return tf.cond(is_jpeg, jpeg, other)


def _other_header(data):
    """`image_header` for every format but JPEG, vectorised (a few dozen ops)."""
    padded = tf.strings.join([tf.strings.substr(data, 0, _HEAD_BYTES), b"\0" * (_HEAD_BYTES + 1)])
    head = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 0, _HEAD_BYTES + 1), tf.uint8), tf.int64)

    patterns, masks = _magic_tables()
    matches = tf.reduce_all(
        tf.logical_or(tf.equal(head[:_MAGIC_LENGTH], tf.constant(patterns, tf.int64)), tf.equal(masks, 0)), axis=1
    )
    codes = tf.constant([code for code, _ in _MAGIC], tf.int32)
    fmt = tf.reduce_max(tf.where(matches, codes, UNKNOWN_FORMAT))

    indices, weights = _field_tables()
    values = tf.reduce_sum(tf.gather(head, indices) * tf.constant(weights, tf.int64), axis=1)
    field = dict(zip(_FIELD_NAMES, tf.unstack(values)))
    bmp_core = tf.equal(field["bmp_header"], 12)  # OS/2 BITMAPCOREHEADER: 16-bit sizes
    bmp_h = tf.abs(tf.where(field["bmp_h"] >= 2**31, field["bmp_h"] - 2**32, field["bmp_h"]))  # top-down: < 0
    chunk = field["chunk"]
    is_vp8x, is_vp8l = tf.equal(chunk, _fourcc(b"VP8X")), tf.equal(chunk, _fourcc(b"VP8L"))
    bits = field["vp8l_bits"]
    sizes = tf.stack([
        tf.zeros([2], tf.int64),  # UNKNOWN_FORMAT
        tf.zeros([2], tf.int64),  # JPEG: not handled here
        tf.stack([field["png_h"], field["png_w"]]),
        tf.stack([field["gif_h"], field["gif_w"]]),
        tf.where(bmp_core, tf.stack([field["bmp_h16"], field["bmp_w16"]]), tf.stack([bmp_h, field["bmp_w"]])),
        tf.where(
            is_vp8x,
            tf.stack([field["vp8x_h"], field["vp8x_w"]]) + 1,
            tf.where(
                is_vp8l,
                tf.stack([(bits // 2**14) % 2**14, bits % 2**14]) + 1,
                tf.stack([field["vp8_h"], field["vp8_w"]]) % 2**14,
            ),
        ),
    ])
    size = tf.gather(sizes, fmt)
    return fmt, size[0], size[1]


def decode_image_checked(data, max_pixels=DEFAULT_MAX_PIXELS):
    """Decodes an image to RGB uint8 after checking its header.

    Args:
        data: scalar `tf.string`, the encoded image.
        max_pixels: refuse images whose header declares more than this many pixels.

    Returns:
        `(image, reason)`: uint8 `[H, W, 3]` (`[0, 0, 3]` when refused) and an int32 reason code (`OK`, `EMPTY`,
        `NOT_AN_IMAGE`, `BAD_HEADER`, `TOO_LARGE`). Truncated or corrupt data raise `InvalidArgumentError`
        from the decoder.

    Example:
    >>> import numpy as np
    >>> image, reason = decode_image_checked(tf.io.encode_png(np.zeros((3, 5, 4), np.uint8)))
    >>> image.shape.as_list(), int(reason)
    ([3, 5, 3], 0)
    """
    if max_pixels is None or max_pixels <= 0:
        raise ValueError(f"`max_pixels` must be a positive number. Received: max_pixels={max_pixels!r}")
    data = tf.convert_to_tensor(data, tf.string)
    fmt, height, width = image_header(data)
    pixels = tf.cast(height, tf.float64) * tf.cast(width, tf.float64)
    reason = tf.where(pixels > float(max_pixels), TOO_LARGE, OK)
    reason = tf.where(tf.logical_or(height <= 0, width <= 0), BAD_HEADER, reason)
    reason = tf.where(tf.equal(fmt, UNKNOWN_FORMAT), NOT_AN_IMAGE, reason)
    reason = tf.where(tf.equal(tf.strings.length(data), 0), EMPTY, reason)

    def decode():
        image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
        return tf.ensure_shape(image, [None, None, 3])

    image = tf.cond(tf.equal(reason, OK), decode, lambda: tf.zeros([0, 0, 3], tf.uint8))
    return image, reason


def _python_format(data):
    if data[:3] == b"\xff\xd8\xff":
        return JPEG
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return PNG
    if data[:4] == b"GIF8":
        return GIF
    if data[:2] == b"BM":
        return BMP
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    return UNKNOWN_FORMAT


def is_truncated(data):
    """Whether encoded image bytes lack their format's end marker (or are shorter than their header says).

    Args:
        data: bytes.

    Returns:
        bool; False for formats without an end marker check.
    """
    fmt = _python_format(data)
    tail = data[-64:]
    if fmt == JPEG:
        return b"\xff\xd9" not in tail
    if fmt == PNG:
        return b"IEND" not in tail
    if fmt == GIF:
        return not data.rstrip(b"\0").endswith(b";")
    if fmt == BMP and len(data) >= 6:
        return int.from_bytes(data[2:6], "little") > len(data)
    if fmt == WEBP and len(data) >= 8:
        return int.from_bytes(data[4:8], "little") + 8 > len(data)
    return False


def classify_undecodable(data):
    """Names why bytes that failed to decode are bad (called in Python, only for failures).

    Args:
        data: bytes of the encoded image.

    Returns:
        one of `"empty"`, `"not_an_image"`, `"truncated"`, `"corrupt"`.
    """
    if not data:
        return "empty"
    if _python_format(data) == UNKNOWN_FORMAT:
        return "not_an_image"
    if is_truncated(data):
        return "truncated"
    return "corrupt"

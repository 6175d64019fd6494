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
REASON_NAMES = {
    OK: "ok",
    EMPTY: "empty",
    NOT_AN_IMAGE: "not_an_image",
    TOO_LARGE: "too_large",
    BAD_HEADER: "corrupt",
    NO_TEXT: "no_text",
    DECODE_ERROR: "corrupt",
    CORRUPT_FILE: "corrupt_file",
}

# Format codes.
UNKNOWN_FORMAT, JPEG, PNG, GIF, BMP, WEBP = 0, 1, 2, 3, 4, 5

_HEAD_BYTES = 32
_MAGIC = (
    (JPEG, 0, b"\xff\xd8\xff"),
    (PNG, 0, b"\x89PNG\r\n\x1a\n"),
    (GIF, 0, b"GIF8"),
    (BMP, 0, b"BM"),
)


def _le(head, start, size):
    value = tf.constant(0, tf.int64)
    for i in reversed(range(size)):
        value = value * 256 + head[start + i]
    return value


def _be(head, start, size):
    value = tf.constant(0, tf.int64)
    for i in range(size):
        value = value * 256 + head[start + i]
    return value


def _starts_with(padded, offset, magic):
    return tf.equal(tf.strings.substr(padded, offset, len(magic)), magic)


def image_header(data):
    """Format and header-declared size of encoded image bytes, without decoding.

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
    padded = tf.strings.join([tf.strings.substr(data, 0, _HEAD_BYTES), b"\0" * _HEAD_BYTES])
    head = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 0, _HEAD_BYTES), tf.uint8), tf.int64)

    fmt = tf.constant(UNKNOWN_FORMAT, tf.int32)
    for code, offset, magic in reversed(_MAGIC):
        fmt = tf.where(_starts_with(padded, offset, magic), code, fmt)
    is_webp = tf.logical_and(_starts_with(padded, 0, b"RIFF"), _starts_with(padded, 8, b"WEBP"))
    fmt = tf.where(is_webp, WEBP, fmt)

    png = (_be(head, 20, 4), _be(head, 16, 4))
    gif = (_le(head, 8, 2), _le(head, 6, 2))
    bmp_core = tf.equal(_le(head, 14, 4), 12)  # OS/2 BITMAPCOREHEADER: 16-bit sizes
    bmp_height = _le(head, 22, 4)
    bmp_height = tf.abs(tf.where(bmp_height >= 2**31, bmp_height - 2**32, bmp_height))  # signed, top-down < 0
    bmp = (tf.where(bmp_core, _le(head, 20, 2), bmp_height), tf.where(bmp_core, _le(head, 18, 2), _le(head, 18, 4)))
    chunk = tf.strings.substr(padded, 12, 4)
    vp8l_bits = _le(head, 21, 4)
    webp = (
        tf.where(
            tf.equal(chunk, b"VP8X"),
            _le(head, 27, 3) + 1,
            tf.where(tf.equal(chunk, b"VP8L"), (vp8l_bits // 2**14) % 2**14 + 1, _le(head, 28, 2) % 2**14),
        ),
        tf.where(
            tf.equal(chunk, b"VP8X"),
            _le(head, 24, 3) + 1,
            tf.where(tf.equal(chunk, b"VP8L"), vp8l_bits % 2**14 + 1, _le(head, 26, 2) % 2**14),
        ),
    )

    def jpeg_size():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[0], shape[1]

    def table_size():
        zero = tf.constant(0, tf.int64)
        height, width = zero, zero
        for code, (h, w) in ((PNG, png), (GIF, gif), (BMP, bmp), (WEBP, webp)):
            height = tf.where(tf.equal(fmt, code), h, height)
            width = tf.where(tf.equal(fmt, code), w, width)
        return height, width

    height, width = tf.cond(tf.equal(fmt, JPEG), jpeg_size, table_size)
    return fmt, height, width


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
    empty = tf.equal(tf.strings.length(data), 0)

    def inspect():
        fmt, height, width = image_header(data)
        return tf.case(
            [
                (tf.equal(fmt, UNKNOWN_FORMAT), lambda: tf.constant(NOT_AN_IMAGE)),
                (tf.logical_or(height <= 0, width <= 0), lambda: tf.constant(BAD_HEADER)),
                (
                    tf.cast(height, tf.float64) * tf.cast(width, tf.float64) > float(max_pixels),
                    lambda: tf.constant(TOO_LARGE),
                ),
            ],
            default=lambda: tf.constant(OK),
            exclusive=False,
        )

    reason = tf.cond(empty, lambda: tf.constant(EMPTY), inspect)

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

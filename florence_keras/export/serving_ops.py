"""Graph ops shared by serving signatures: request checks, image decoding, token-id packing.

Everything here is plain TensorFlow (stock ops only) so that signatures built from it run on any TF Serving
build. A bad request fails with an `InvalidArgument` error whose message names the signature, the input and
the offending element; TF Serving returns it to the client (gRPC `INVALID_ARGUMENT`, REST 400) and keeps
serving.
"""

import tensorflow as tf

from florence_keras.data import image_decoding
from florence_keras.data.image_decoding import DEFAULT_MAX_PIXELS

# Client-facing wording of the decoder's refusal reasons.
_REFUSALS = {
    image_decoding.EMPTY: "empty bytes",
    image_decoding.NOT_AN_IMAGE: "not a JPEG, PNG, GIF, BMP or WebP image",
    image_decoding.TOO_LARGE: "its header declares more pixels than max_image_pixels allows",
    image_decoding.BAD_HEADER: "its header declares a zero or invalid size",
}
# Channel indices that make an image RGB: gray -> repeat, gray+alpha -> repeat gray, RGB -> keep,
# RGBA -> drop alpha. The same rule as `florence_keras.models.florence_image_converter.standardize_channels`,
# written for a channel count known only at run time.
_RGB_CHANNELS = ((0, 0, 0), (0, 0, 0), (0, 1, 2), (0, 1, 2))


def _with_checks(checks, tensor):
    checks = [check for check in checks if check is not None]  # Eagerly, asserts run at once and return None.
    with tf.control_dependencies(checks):
        return tf.identity(tensor)


def assert_non_empty_batch(tensor, signature_name, input_name):
    """Returns `tensor`, failing at run time with a clear message if its batch axis is empty.

    Args:
        tensor: a tensor whose axis 0 is the batch.
        signature_name: str, named in the error.
        input_name: str, named in the error.

    Returns:
        `tensor` (an identity that depends on the check).

    Example:
    >>> assert_non_empty_batch(tf.constant([1, 2]), "sig", "x").numpy().tolist()
    [1, 2]
    """
    check = tf.debugging.assert_greater(
        tf.shape(tensor, out_type=tf.int64)[0],
        tf.constant(0, tf.int64),
        message=f"{signature_name}: `{input_name}` is an empty batch; send at least one element.",
    )
    return _with_checks([check], tensor)


def rgb_images(images, signature_name="images"):
    """Makes `(..., H, W, C)` images RGB when `C` (1, 2, 3 or 4) is known only at run time.

    Gray is repeated, an alpha channel dropped (not composited) — as the Keras image converter does.

    Args:
        images: `(H, W, C)` or `(B, H, W, C)` tensor of any dtype.
        signature_name: str, named in the error for other channel counts.

    Returns:
        the images with 3 channels, same dtype.

    Example:
    >>> rgb_images(tf.constant([[[7, 9]]], tf.uint8)).numpy().tolist()
    [[[7, 7, 7]]]
    """
    channels = tf.shape(images)[-1]
    check = tf.debugging.Assert(
        tf.logical_and(channels >= 1, channels <= 4),
        [tf.strings.format(f"{signature_name}: images need 1, 2, 3 or 4 channels; received {{}}.", [channels])],
    )
    channels = _with_checks([check], channels)
    index = tf.gather(tf.constant(_RGB_CHANNELS, tf.int32), channels - 1)
    return tf.gather(images, index, axis=-1)


def decode_image_batch(image_bytes, convert, output_shape, signature_name, max_image_pixels=DEFAULT_MAX_PIXELS):
    """Decodes a batch of encoded images of any sizes into converted images of one size.

    Each image goes through the training pipeline's decoder, `florence_keras.data.image_decoding.
    decode_image_checked` (format and size read from the header first, so a decompression bomb is refused
    before any memory is allocated; then `tf.io.decode_image(channels=3, expand_animations=False)`: gray
    repeated, alpha dropped, 16-bit reduced to 8, GIF's first frame), so served and training pixels agree
    bit for bit. A refused image fails the request with a message naming its index and the reason; data
    that only the decoder finds corrupt (a truncated JPEG/PNG) fails with the decoder's own
    `InvalidArgument` message. The RGB image is then passed to `convert` (e.g. the preset's image
    converter: centre-crop, resize, normalise).

    Args:
        image_bytes: string tensor `(B,)` of JPEG, PNG, GIF, BMP or WebP bytes.
        convert: callable, uint8 `(H, W, 3)` -> float `output_shape`.
        output_shape: the shape `convert` returns, e.g. `(224, 224, 3)`.
        signature_name: str, named in errors.
        max_image_pixels: int, the largest header-declared `height * width` accepted.

    Returns:
        float32 `(B,) + output_shape`.

    Example:
    >>> png = tf.io.encode_png(tf.zeros((5, 7, 1), tf.uint8))
    >>> decode_image_batch(tf.stack([png]), lambda im: tf.cast(im, tf.float32), (5, 7, 3), "sig").shape
    TensorShape([1, 5, 7, 3])
    """
    if max_image_pixels <= 0:
        raise ValueError(f"`max_image_pixels` must be positive. Received: max_image_pixels={max_image_pixels}")
    image_bytes = assert_non_empty_batch(image_bytes, signature_name, "image_bytes")
    indices = tf.range(tf.shape(image_bytes, out_type=tf.int64)[0])
    reason_names = tf.constant([
        _REFUSALS.get(code, name) for code, name in sorted(image_decoding.REASON_NAMES.items())
    ])

    def decode_one(args):
        data, index = args
        image, reason = image_decoding.decode_image_checked(data, max_pixels=max_image_pixels)
        check = tf.debugging.Assert(
            tf.equal(reason, image_decoding.OK),
            [tf.strings.join([
                f"{signature_name}: image_bytes[", tf.strings.as_string(index), "] (",
                tf.strings.as_string(tf.strings.length(data)), " bytes) was refused: ",
                tf.gather(reason_names, reason), ".",
            ])],
        )
        image = _with_checks([check], image)
        return tf.cast(convert(image), tf.float32)

    return tf.map_fn(
        decode_one,
        (image_bytes, indices),
        fn_output_signature=tf.TensorSpec(tuple(output_shape), tf.float32),
    )


def pack_token_ids(token_ids, lengths, packer, vocabulary_size, reserved_ids, signature_name):
    """Re-packs client token ids `(B, L)` + `lengths` `(B,)` into the model's fixed layout.

    Row `b` holds `lengths[b]` BPE ids (no start/end tokens) followed by any padding. The valid ids are
    handed to `packer` (the preprocessor's `StartEndPacker`: truncate so that the end token fits, add
    start and end, pad), exactly as the string path packs the tokenizer's output.

    Args:
        token_ids: int32 `(B, L)`, any `L >= 0`.
        lengths: int32 `(B,)`, each in `[0, L]`.
        packer: callable, ragged int `(B, None)` -> dense int `(B, sequence_length)`.
        vocabulary_size: int; ids must lie in `[0, vocabulary_size)`.
        reserved_ids: ids clients must not send (the start/end tokens the packer adds).
        signature_name: str, named in errors.

    Returns:
        int32 `(B, sequence_length)`.

    Example:
    >>> pack = lambda ragged: ragged.to_tensor(default_value=-1, shape=[None, 4])
    >>> pack_token_ids(tf.constant([[5, 6, 0], [7, 0, 0]]), tf.constant([2, 1]), pack, 10, [], "sig").numpy().tolist()
    [[5, 6, -1, -1], [7, -1, -1, -1]]
    """
    reserved_ids = [int(i) for i in reserved_ids]
    token_ids = assert_non_empty_batch(token_ids, signature_name, "token_ids")
    batch = tf.shape(token_ids)[0]
    width = tf.shape(token_ids)[1]
    checks = [
        tf.debugging.assert_equal(
            tf.shape(lengths)[0], batch,
            message=f"{signature_name}: `lengths` needs one entry per row of `token_ids`.",
        ),
        tf.debugging.assert_non_negative(lengths, message=f"{signature_name}: `lengths` must be >= 0."),
        tf.debugging.assert_less_equal(
            lengths, width,
            message=f"{signature_name}: each `lengths[b]` must be <= the width of `token_ids`.",
        ),
    ]
    lengths = _with_checks(checks, lengths)
    ragged = tf.RaggedTensor.from_tensor(token_ids, lengths=lengths)
    values = ragged.flat_values
    bad = tf.logical_or(values < 0, values >= vocabulary_size)
    for reserved in reserved_ids:
        bad = tf.logical_or(bad, tf.equal(values, reserved))
    id_check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad)),
        [tf.strings.format(
            f"{signature_name}: token_ids must be BPE ids in [0, {vocabulary_size}) without the special "
            f"tokens {reserved_ids} (the signature adds them); received {{}}.",
            [tf.boolean_mask(values, bad)[:8]],
        )],
    )
    with tf.control_dependencies([id_check]):
        ragged = tf.RaggedTensor.from_row_splits(tf.identity(values), ragged.row_splits)
    return tf.cast(packer(ragged), tf.int32)

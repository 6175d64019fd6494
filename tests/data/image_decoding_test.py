import io

import cv2
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from florence_keras.data import image_decoding

HEIGHT, WIDTH = 37, 53
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def _cv2_bytes(ext, image, params=()):
    ok, data = cv2.imencode(ext, image, list(params))
    assert ok
    return data.tobytes()


def _pil_bytes(image, fmt, **kwargs):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


ENCODED = {
    "jpeg": (_cv2_bytes(".jpg", RGB), image_decoding.JPEG),
    "png": (_cv2_bytes(".png", RGB), image_decoding.PNG),
    "bmp": (_cv2_bytes(".bmp", RGB), image_decoding.BMP),
    "webp_lossy": (_cv2_bytes(".webp", RGB, [cv2.IMWRITE_WEBP_QUALITY, 80]), image_decoding.WEBP),
    "webp_lossless": (_cv2_bytes(".webp", RGB, [cv2.IMWRITE_WEBP_QUALITY, 101]), image_decoding.WEBP),
    "webp_extended": (_pil_bytes(np.dstack([RGB, RGB[..., :1]]), "WEBP"), image_decoding.WEBP),
    "gif": (_pil_bytes(RGB, "GIF"), image_decoding.GIF),
}


@pytest.mark.parametrize("name", sorted(ENCODED))
def test_header_gives_format_and_size_without_decoding(name):
    data, code = ENCODED[name]
    fmt, height, width = image_decoding.image_header(data)
    assert (int(fmt), int(height), int(width)) == (code, HEIGHT, WIDTH)


def test_header_of_a_top_down_bmp_and_of_non_images():
    data = bytearray(ENCODED["bmp"][0])
    data[22:26] = (-HEIGHT).to_bytes(4, "little", signed=True)  # top-down rows: negative height
    assert [int(v) for v in image_decoding.image_header(bytes(data))] == [image_decoding.BMP, HEIGHT, WIDTH]
    for data in (b"", b"hello world", b"\x89PN"):
        assert int(image_decoding.image_header(data)[0]) == image_decoding.UNKNOWN_FORMAT


def test_decoding_gives_rgb_for_every_colour_layout():
    gray = RGB[..., 0]
    rgba = np.dstack([RGB, np.full((HEIGHT, WIDTH), 7, np.uint8)])
    deep = (RGB[..., 0].astype(np.uint16) * 257 + 100).astype(np.uint16)  # 16-bit gray
    cases = {
        "rgb": (_cv2_bytes(".png", RGB[..., ::-1]), RGB),
        "gray": (_cv2_bytes(".png", gray), np.repeat(gray[..., None], 3, axis=2)),
        "rgba": (_cv2_bytes(".png", rgba[..., [2, 1, 0, 3]]), RGB),  # alpha dropped
        "gray16": (_cv2_bytes(".png", deep), np.repeat((deep >> 8).astype(np.uint8)[..., None], 3, axis=2)),
        "bmp": (_cv2_bytes(".bmp", RGB[..., ::-1]), RGB),
    }
    for name, (data, expected) in cases.items():
        image, reason = image_decoding.decode_image_checked(data)
        assert int(reason) == image_decoding.OK, name
        np.testing.assert_array_equal(image.numpy(), expected, err_msg=name)


def test_refusals_come_back_as_reasons():
    png = _cv2_bytes(".png", RGB)
    assert int(image_decoding.decode_image_checked(png, max_pixels=HEIGHT * WIDTH)[1]) == image_decoding.OK
    image, reason = image_decoding.decode_image_checked(png, max_pixels=HEIGHT * WIDTH - 1)
    assert int(reason) == image_decoding.TOO_LARGE and image.shape == (0, 0, 3)
    bomb = bytearray(png)
    bomb[16:24] = (100_000).to_bytes(4, "big") * 2  # the header claims 10^10 pixels
    assert int(image_decoding.decode_image_checked(bytes(bomb))[1]) == image_decoding.TOO_LARGE
    zero = bytearray(png)
    zero[16:20] = bytes(4)
    assert int(image_decoding.decode_image_checked(bytes(zero))[1]) == image_decoding.BAD_HEADER
    assert int(image_decoding.decode_image_checked(b"")[1]) == image_decoding.EMPTY
    assert int(image_decoding.decode_image_checked(b"GIF? no")[1]) == image_decoding.NOT_AN_IMAGE
    with pytest.raises(ValueError, match="max_pixels"):
        image_decoding.decode_image_checked(png, max_pixels=0)


def test_broken_data_raises_in_the_decoder_and_is_classified():
    jpeg = _cv2_bytes(".jpg", RGB)
    truncated = jpeg[: len(jpeg) // 2]
    png = bytearray(_cv2_bytes(".png", RGB))
    png[60:90] = bytes(30)  # inside IDAT: zlib/CRC error
    for data in (truncated, bytes(png)):
        with pytest.raises(tf.errors.InvalidArgumentError):
            image_decoding.decode_image_checked(data)
    assert image_decoding.classify_undecodable(truncated) == "truncated"
    assert image_decoding.classify_undecodable(bytes(png)) == "corrupt"
    assert image_decoding.classify_undecodable(b"") == "empty"
    assert image_decoding.classify_undecodable(b"plain text") == "not_an_image"
    assert image_decoding.classify_undecodable(_cv2_bytes(".png", RGB)[:-20]) == "truncated"


def test_same_results_eagerly_and_inside_tf_data():
    datas = [ENCODED[name][0] for name in ("jpeg", "png", "gif")] + [b"", b"text"]
    eager = [image_decoding.decode_image_checked(d) for d in datas]
    piped = list(tf.data.Dataset.from_tensor_slices(datas).map(image_decoding.decode_image_checked))
    for (image_a, reason_a), (image_b, reason_b) in zip(eager, piped):
        assert int(reason_a) == int(reason_b)
        np.testing.assert_array_equal(image_a.numpy(), image_b.numpy())

"""Small deterministic example inputs for warm-up requests and the REST docs of every signature."""

import numpy as np
import tensorflow as tf

EXAMPLE_TEXTS = ("a photo of a cat.", "A diagram of a ROCKET")


def example_images():
    """Two small images: a colour gradient (RGB, 18x24) and a gray ramp (1 channel, 20x14)."""
    y, x = np.mgrid[0:18, 0:24]
    color = np.stack([x * 10, y * 14, (x + y) * 6], axis=-1).astype(np.uint8)
    gray = (np.mgrid[0:20, 0:14][0] * 12).astype(np.uint8)[..., None]
    return color, gray


def example_image_bytes():
    """`example_images()` encoded as PNG and JPEG: a string array `[2]`.

    Example:
    >>> [bytes(b[:4]) for b in example_image_bytes()]
    [b'\\x89PNG', b'\\xff\\xd8\\xff\\xe0']
    """
    color, gray = example_images()
    return np.array(
        [tf.io.encode_png(color).numpy(), tf.io.encode_jpeg(gray, quality=90).numpy()], dtype=object
    )

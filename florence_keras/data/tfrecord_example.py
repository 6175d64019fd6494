"""The image-text `tf.train.Example` layout: `image/encoded` bytes plus a `caption` or a class name.

An image-text record carries `caption`; an image-label record carries `image/class/text` (the class name; the
reader fills a prompt template with it each time it is read). Extra features are ignored by the reader.
"""

import tensorflow as tf
from google.protobuf.message import DecodeError

IMAGE_KEY = "image/encoded"
TEXT_KEY = "caption"
CLASS_KEY = "image/class/text"


def _bytes_feature(value):
    if isinstance(value, str):
        value = value.encode("utf-8")
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def make_image_text_example(encoded_image, caption="", class_name=""):
    """Builds a serialized image-text (or image-label) `tf.train.Example`.

    Args:
        encoded_image: bytes, an encoded image (JPEG, PNG, ...).
        caption: str, the caption ("" for image-label data).
        class_name: str, the class name ("" for image-text data).

    Returns:
        bytes, the serialized example.

    Example:
    >>> record = make_image_text_example(b"jpeg bytes", caption="a red circle")
    >>> parse_image_text_example(record)["texts"].numpy()
    b'a red circle'
    """
    if not isinstance(encoded_image, bytes):
        raise ValueError(f"`encoded_image` must be bytes. Received type: {type(encoded_image).__name__}")
    features = {IMAGE_KEY: _bytes_feature(encoded_image)}
    if caption:
        features[TEXT_KEY] = _bytes_feature(caption)
    if class_name:
        features[CLASS_KEY] = _bytes_feature(class_name)
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def parse_image_text_example(record, image_key=IMAGE_KEY, text_key=TEXT_KEY, class_key=CLASS_KEY):
    """Parses a serialized example (a TF op, usable in `tf.data`).

    Args:
        record: scalar `tf.string`.
        image_key, text_key, class_key: feature names.

    Returns:
        dict with scalar `tf.string` entries `data` (encoded image), `texts` and `class_names` ("" when absent).
    """
    spec = {
        image_key: tf.io.FixedLenFeature([], tf.string),
        text_key: tf.io.FixedLenFeature([], tf.string, default_value=""),
        class_key: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    parsed = tf.io.parse_single_example(record, spec)
    return {"data": parsed[image_key], "texts": parsed[text_key], "class_names": parsed[class_key]}


def parse_image_text_example_python(record, image_key=IMAGE_KEY):
    """The encoded image of a serialized example, parsed in Python (None if it isn't a valid example).

    Args:
        record: bytes.
        image_key: the image feature name.

    Returns:
        bytes or None.
    """
    try:
        example = tf.train.Example.FromString(record)
    except DecodeError:
        return None
    values = example.features.feature[image_key].bytes_list.value
    return values[0] if values else None

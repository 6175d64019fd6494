"""`detect_signature`: image bytes -> a `FlorenceDetector`'s boxes, scores, classes and class names."""

import tensorflow as tf

from florence_keras.data import image_decoding
from florence_keras.data.image_decoding import DEFAULT_MAX_PIXELS
from florence_keras.export.export_signature import ExportSignature
from florence_keras.export.serving_examples import example_image_bytes

DETECT_SERVING_DEFAULT = "detect"


def detect_signature(detector, max_image_pixels=DEFAULT_MAX_PIXELS):
    """The `detect` signature of a `FlorenceDetector`.

    `detect(image_bytes: string [])` -> `boxes` float32 `[D, 4]` (`xyxy` in the encoded image's pixels),
    `scores` float32 `[D]`, `classes` int32 `[D]` (−1 past `num_detections`), `class_names` string `[D]`
    ("" past it) and `num_detections` int32 `[]`, D = the detector's `max_detections` — what
    `detector.predict(image)` returns. Any image size: the image is decoded as the training pipeline decodes
    images (`decode_image_checked`; a refused image fails the request with the reason), then the detector's
    own `detection_inputs` (fit + pad + normalise) and `decode` (top-k, per-class NMS, back to image pixels) run
    in the graph. A class-agnostic (zero-shot) detector's class-name embeddings are computed now and frozen
    into the graph.

    Args:
        detector: a `FlorenceDetector` with a preprocessor (image converter).
        max_image_pixels: largest `height * width` an encoded image may declare.

    Returns:
        an `ExportSignature`.
    """
    if getattr(detector, "preprocessor", None) is None or detector.preprocessor.image_converter is None:
        raise ValueError("`detector` needs a preprocessor with an image converter to be served.")
    if max_image_pixels <= 0:
        raise ValueError(f"`max_image_pixels` must be positive. Received: max_image_pixels={max_image_pixels}")
    reason_names = tf.constant([name for _, name in sorted(image_decoding.REASON_NAMES.items())])
    class_names = tf.constant(list(detector.class_names) + [""])  # index −1 -> ""
    embeddings = tf.constant(detector.class_embeddings()) if detector.class_agnostic else None

    def detect(image_bytes):
        image, reason = image_decoding.decode_image_checked(image_bytes, max_pixels=max_image_pixels)
        check = tf.debugging.Assert(
            tf.equal(reason, image_decoding.OK),
            [tf.strings.join(["detect: image_bytes (", tf.strings.as_string(tf.strings.length(image_bytes)),
                              " bytes) was refused: ", tf.gather(reason_names, reason), "."])],
        )
        with tf.control_dependencies([check]):
            image = tf.identity(image)
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        inputs, scales = detector.detection_inputs(image[None])
        found = detector.decode(detector(inputs, training=False), scales, height, width, embeddings, inputs=inputs)
        labels = found["labels"][0]
        return {"boxes": found["boxes"][0], "scores": found["confidence"][0], "classes": labels,
                "class_names": tf.gather(class_names, tf.where(labels < 0, len(detector.class_names), labels)),
                "num_detections": found["num_detections"][0]}

    return ExportSignature(
        DETECT_SERVING_DEFAULT, detect, {"image_bytes": tf.TensorSpec([], tf.string)},
        {"image_bytes": example_image_bytes()[0]}, resources={"detector": detector},
        description="JPEG/PNG bytes of one image -> boxes [D, 4] xyxy pixels, scores, classes, class names",
    )

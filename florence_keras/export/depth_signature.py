"""`estimate_depth_signature`: image bytes -> a `FlorenceDepthEstimator`'s depth map at the image's size."""

import tensorflow as tf

from florence_keras.data import image_decoding
from florence_keras.data.image_decoding import DEFAULT_MAX_PIXELS
from florence_keras.export.export_signature import ExportSignature
from florence_keras.export.serving_examples import example_image_bytes

DEPTH_SERVING_DEFAULT = "estimate_depth"


def estimate_depth_signature(estimator, max_image_pixels=DEFAULT_MAX_PIXELS):
    """The `estimate_depth` signature of a `FlorenceDepthEstimator`.

    `estimate_depth(image_bytes: string [])` -> `depth: float32 [H, W]`, metres, at the encoded image's own
    size — what `estimator.predict(image)` returns. The image is decoded as the training pipeline decodes
    images (`decode_image_checked`: header checked first, gray repeated, alpha dropped); a refused image fails
    the request with the reason; then the estimator's own `depth_inputs` (whole-image resize + normalisation)
    and the bilinear resize back to `[H, W]` of `resize_depth` run in the graph, so served and Keras depth
    agree.

    Args:
        estimator: a `FlorenceDepthEstimator` with a preprocessor (image converter).
        max_image_pixels: largest `height * width` an encoded image may declare.

    Returns:
        an `ExportSignature`.
    """
    if getattr(estimator, "preprocessor", None) is None or estimator.preprocessor.image_converter is None:
        raise ValueError("`estimator` needs a preprocessor with an image converter to be served.")
    if max_image_pixels <= 0:
        raise ValueError(f"`max_image_pixels` must be positive. Received: max_image_pixels={max_image_pixels}")
    reason_names = tf.constant([name for _, name in sorted(image_decoding.REASON_NAMES.items())])

    def estimate_depth(image_bytes):
        image, reason = image_decoding.decode_image_checked(image_bytes, max_pixels=max_image_pixels)
        check = tf.debugging.Assert(
            tf.equal(reason, image_decoding.OK),
            [tf.strings.join(["estimate_depth: image_bytes (", tf.strings.as_string(tf.strings.length(image_bytes)),
                              " bytes) was refused: ", tf.gather(reason_names, reason), "."])],
        )
        with tf.control_dependencies([check]):
            image = tf.identity(image)
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        depth = estimator(estimator.depth_inputs(image[None]), training=False)
        # `resize_depth`'s resize (keras.ops needs Python sizes; this one is known only at run time): the same
        # `tf.image.resize` bilinear call that Keras's TensorFlow backend makes.
        depth = tf.image.resize(tf.cast(depth, tf.float32)[..., None], tf.stack([height, width]), method="bilinear")
        return {"depth": depth[0, :, :, 0]}

    return ExportSignature(
        DEPTH_SERVING_DEFAULT, estimate_depth, {"image_bytes": tf.TensorSpec([], tf.string)},
        {"image_bytes": example_image_bytes()[0]},
        resources={"backbone": estimator.backbone, "decoder": estimator.decoder},
        description="JPEG/PNG bytes of one image -> float32 depth [H, W] in metres at the image's size",
    )

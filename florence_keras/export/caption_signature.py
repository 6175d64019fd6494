"""`caption_signature`: image bytes -> a `FlorenceCaptioner`'s greedy caption string."""

import tensorflow as tf

from florence_keras.data import image_decoding
from florence_keras.data.image_decoding import DEFAULT_MAX_PIXELS
from florence_keras.export.export_signature import ExportSignature
from florence_keras.export.serving_examples import example_image_bytes

CAPTION_SERVING_DEFAULT = "caption"


def caption_signature(captioner, max_image_pixels=DEFAULT_MAX_PIXELS):
    """The `caption` signature of a `FlorenceCaptioner`.

    `caption(image_bytes: string [])` -> `caption: string []` and `token_ids: int32 [max_length]` (the generated
    ids, `<start>` first). The image is decoded as the training pipeline decodes images (`decode_image_checked`;
    a refused image fails the request with the reason), then the captioner's own `caption_inputs` (whole-image
    resize + normalisation), greedy `generate_ids` (keras-hub's `GreedySampler`, the loop traced into the graph)
    and `CaptionVocabulary.decode_ids_tf` (the graph twin of `decode`) run — the code `captioner.generate(image,
    num_beams=1)` runs.

    Args:
        captioner: a `FlorenceCaptioner` with a preprocessor (image converter).
        max_image_pixels: largest `height * width` an encoded image may declare.

    Returns:
        an `ExportSignature`.
    """
    if getattr(captioner, "preprocessor", None) is None or captioner.preprocessor.image_converter is None:
        raise ValueError("`captioner` needs a preprocessor with an image converter to be served.")
    if max_image_pixels <= 0:
        raise ValueError(f"`max_image_pixels` must be positive. Received: max_image_pixels={max_image_pixels}")
    reason_names = tf.constant([name for _, name in sorted(image_decoding.REASON_NAMES.items())])

    def caption(image_bytes):
        image, reason = image_decoding.decode_image_checked(image_bytes, max_pixels=max_image_pixels)
        check = tf.debugging.Assert(
            tf.equal(reason, image_decoding.OK),
            [tf.strings.join(["caption: image_bytes (", tf.strings.as_string(tf.strings.length(image_bytes)),
                              " bytes) was refused: ", tf.gather(reason_names, reason), "."])],
        )
        with tf.control_dependencies([check]):
            image = tf.identity(image)
        ids = tf.cast(captioner.generate_ids(captioner.caption_inputs(image[None]), num_beams=1), tf.int32)
        return {"caption": captioner.caption_vocabulary.decode_ids_tf(ids)[0], "token_ids": ids[0]}

    return ExportSignature(
        CAPTION_SERVING_DEFAULT, caption, {"image_bytes": tf.TensorSpec([], tf.string)},
        {"image_bytes": example_image_bytes()[0]},
        resources={"backbone": captioner.backbone, "decoder": captioner.decoder},
        description="JPEG/PNG bytes of one image -> its caption (greedy decoding) and the generated token ids",
    )

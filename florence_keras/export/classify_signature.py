"""`classify_signature`: image bytes -> the top-k classes of a `FlorenceImageClassifier`."""

import tensorflow as tf

from florence_keras.data.image_decoding import DEFAULT_MAX_PIXELS
from florence_keras.export import serving_ops
from florence_keras.export.export_signature import ExportSignature
from florence_keras.export.serving_examples import example_image_bytes


def classify_signature(classifier, top_k=5, max_image_pixels=DEFAULT_MAX_PIXELS):
    """The `classify` signature of a `FlorenceImageClassifier` (either head).

    `classify(image_bytes: string [B])` -> `class_names: string [B, k]`, `class_ids: int32 [B, k]`, `scores:
    float32 [B, k]` (softmax over all classes of the classifier's logits), best first, ties to the lower class
    id — the outputs of `FlorenceImageClassifier.classify`. The images are decoded as the training pipeline
    decodes them (`serving_ops.decode_image_batch`), then cropped, resized and normalised by the classifier's
    image converter. The class names are constants of the graph; the class embeddings (UniCL head) or the Dense
    kernel (linear head) are variables saved with the backbone.

    Args:
        classifier: a `FlorenceImageClassifier` with a preprocessor (image converter).
        top_k: classes returned (at most the number of classes).
        max_image_pixels: largest `height * width` an encoded image may declare.

    Returns:
        an `ExportSignature`.
    """
    if getattr(classifier, "preprocessor", None) is None or classifier.preprocessor.image_converter is None:
        raise ValueError("`classifier` needs a preprocessor with an image converter to be served.")
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"`top_k` must be a positive int. Received: top_k={top_k!r}")
    converter = classifier.preprocessor.image_converter
    image_shape = tuple(converter.image_size) + (3,)
    # Repeated names are allowed (CLIP's ImageNet list has two "missile" classes); `class_ids` tells them apart.
    class_names = [str(name) for name in classifier.class_names]
    k = min(top_k, len(class_names))

    def classify(image_bytes):
        pixels = serving_ops.decode_image_batch(image_bytes, converter, image_shape, "classify", max_image_pixels)
        logits = tf.cast(classifier(pixels, training=False), tf.float32)
        top = tf.math.top_k(logits, k=k)  # Equal logits: the lower class id comes first.
        probabilities = tf.gather(tf.nn.softmax(logits, axis=-1), top.indices, batch_dims=1)
        return {
            "class_names": tf.gather(tf.constant(class_names), top.indices),
            "class_ids": top.indices,
            "scores": probabilities,
        }

    return ExportSignature(
        "classify", classify, {"image_bytes": tf.TensorSpec([None], tf.string)},
        {"image_bytes": example_image_bytes()},
        # What the graph reads: the backbone's variables and the head's (not the tokenizer's tables).
        resources={"backbone": classifier.backbone, "head": classifier.head},
        description=f"JPEG/PNG bytes -> top-{k} of {len(class_names)} classes with softmax scores",
    )

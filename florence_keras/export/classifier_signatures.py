"""The serving signatures of `FlorenceImageClassifier`: `classify`, and the CLIP ones for the UniCL head."""

from florence_keras.data.image_decoding import DEFAULT_MAX_PIXELS
from florence_keras.export.classify_signature import classify_signature
from florence_keras.export.clip_signatures import clip_signatures
from florence_keras.models.florence_clip import FlorenceCLIP

CLASSIFIER_SERVING_DEFAULT = "classify"


def image_classifier_signatures(classifier, top_k=5, max_image_pixels=DEFAULT_MAX_PIXELS):
    """The `ExportSignature`s of a `FlorenceImageClassifier`.

    Always `classify` (see `classify_signature`; `CLASSIFIER_SERVING_DEFAULT`). With the UniCL head, whose image
    and text towers were tuned together and still share one embedding space, also the `FlorenceCLIP`
    signatures of its backbone (`encode_image_bytes`, `encode_images`, `encode_texts`, `encode_token_ids`). A
    linear-head classifier tuned its image tower alone, so its embeddings would no longer match the texts':
    it serves `classify` only.

    Args:
        classifier: a `FlorenceImageClassifier` with a preprocessor.
        top_k: classes returned by `classify`.
        max_image_pixels: largest `height * width` an encoded image may declare.

    Returns:
        list of `ExportSignature`.
    """
    signatures = [classify_signature(classifier, top_k=top_k, max_image_pixels=max_image_pixels)]
    if classifier.head_type == "unicl":
        clip = FlorenceCLIP(classifier.backbone, classifier.preprocessor, compile=False)
        signatures = clip_signatures(clip, max_image_pixels=max_image_pixels) + signatures
    return signatures

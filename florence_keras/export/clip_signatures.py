"""The serving signatures of `FlorenceCLIP`: image bytes, images, texts, token ids, zero-shot classify."""

import numpy as np
import tensorflow as tf

from florence_keras.data.image_decoding import DEFAULT_MAX_PIXELS
from florence_keras.export import serving_ops
from florence_keras.export.classify_signature import classify_signature
from florence_keras.export.export_signature import ExportSignature
from florence_keras.export.serving_examples import EXAMPLE_TEXTS
from florence_keras.export.serving_examples import example_image_bytes
from florence_keras.export.serving_examples import example_images
from florence_keras.models.florence_image_classifier import FlorenceImageClassifier

# `serving_default` is an alias of this signature. It takes what most clients have (an encoded photo,
# base64 in REST), returns the model's primary product (an embedding, independent of any export-time
# class list), and uses stock TensorFlow ops only, so the default works on every TF Serving build.
CLIP_SERVING_DEFAULT = "encode_image_bytes"

def clip_signatures(
    clip,
    class_names=None,
    templates=("a photo of a {}.",),
    top_k=5,
    max_image_pixels=DEFAULT_MAX_PIXELS,
):
    """The `ExportSignature`s of a `FlorenceCLIP`.

    * `encode_image_bytes(image_bytes: string [B])` -> `embeddings: float32 [B, D]`: JPEG/PNG (also GIF,
      BMP, WebP) bytes of any sizes, decoded as the training pipeline decodes (`serving_ops.
      decode_image_batch`), then cropped, resized and normalised by the preset's image converter.
    * `encode_images(images: uint8 [B, H, W, C])` -> `embeddings`: one batch of same-size images, `C` in
      1 (gray), 2 (gray+alpha), 3 (RGB), 4 (RGBA).
    * `encode_texts(texts: string [B])` -> `embeddings`: the tokenizer runs in the graph (needs TF-Text ops).
    * `encode_token_ids(token_ids: int32 [B, L], lengths: int32 [B])` -> `embeddings`: row `b` holds
      `lengths[b]` CLIP BPE ids *without* start/end tokens (e.g. transformers' `CLIPTokenizer(...,
      add_special_tokens=False)`), then any padding; the graph truncates to 75 ids, adds start and end, and
      pads to the model's 77 (as `encode_texts` does). Stock TensorFlow ops only.
    * `classify(image_bytes: string [B])` -> `class_names: string [B, k]`, `class_ids: int32 [B, k]`,
      `scores: float32 [B, k]` (softmax over all classes of `logit_scale * cosine`), best first, ties to
      the lower class id. Only when `class_names` is given: the zero-shot `FlorenceImageClassifier` of the
      CLIP model (`FlorenceImageClassifier.from_clip`, UniCL head: the class embeddings are the prompt
      ensemble over `templates`, computed here, at export time) served by `classify_signature`.

    Every signature rejects an empty batch with an `InvalidArgument` error (as `FlorenceCLIP.encode_*`
    raise on empty input) rather than returning an empty result: an empty request is a client bug.

    Args:
        clip: a `FlorenceCLIP` with a preprocessor.
        class_names: optional list of class names for `classify`.
        templates: prompt templates with one `{}` (e.g. `florence_keras.data.labels.imagenet_templates()`).
        top_k: classes returned by `classify` (at most the number of classes).
        max_image_pixels: largest `height * width` an encoded image may declare (default 100M, the
            training pipeline's limit).

    Returns:
        list of `ExportSignature`; `CLIP_SERVING_DEFAULT` names the default one.

    Example:
    >>> from florence_keras.models import FlorenceCLIP
    >>> clip = FlorenceCLIP.from_preset("florence_tiny")  # doctest: +SKIP
    >>> [s.name for s in clip_signatures(clip, ["cat", "dog"])]  # doctest: +SKIP
    ['encode_image_bytes', 'encode_images', 'encode_texts', 'encode_token_ids', 'classify']
    """
    if getattr(clip, "preprocessor", None) is None or clip.preprocessor.image_converter is None:
        raise ValueError("`clip` needs a preprocessor with an image converter to be served.")
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"`top_k` must be a positive int. Received: top_k={top_k!r}")
    backbone = clip.backbone
    preprocessor = clip.preprocessor
    converter = preprocessor.image_converter
    tokenizer = preprocessor.tokenizer
    if not preprocessor.built:
        preprocessor.build()
    image_shape = tuple(converter.image_size) + (3,)
    # What each signature reads: the backbone's variables; the string path also the tokenizer's tables.
    # (Only these are saved, so an export without `encode_texts` carries no vocabulary tables.)
    resources = {"backbone": backbone}
    text_resources = {"backbone": backbone, "preprocessor": preprocessor}

    def embed_pixels(pixels):
        return {"embeddings": tf.cast(backbone.embed_images(pixels), tf.float32)}

    def embed_token_ids(token_ids):
        return {"embeddings": tf.cast(backbone.embed_texts(token_ids), tf.float32)}

    def encode_image_bytes(image_bytes):
        return embed_pixels(serving_ops.decode_image_batch(
            image_bytes, converter, image_shape, "encode_image_bytes", max_image_pixels
        ))

    def encode_images(images):
        images = serving_ops.assert_non_empty_batch(images, "encode_images", "images")
        images = serving_ops.rgb_images(images, "encode_images")
        images.set_shape([None, None, None, 3])
        return embed_pixels(tf.cast(converter(images), tf.float32))

    def encode_texts(texts):
        texts = serving_ops.assert_non_empty_batch(texts, "encode_texts", "texts")
        return embed_token_ids(preprocessor.tokenize(texts))

    def encode_token_ids(token_ids, lengths):
        packed = serving_ops.pack_token_ids(
            token_ids,
            lengths,
            preprocessor.packer,
            vocabulary_size=tokenizer.vocabulary_size(),
            reserved_ids=(tokenizer.start_token_id, tokenizer.end_token_id),
            signature_name="encode_token_ids",
        )
        return embed_token_ids(packed)

    image_bytes_example = example_image_bytes()
    color, _ = example_images()
    example_ids = [[int(i) for i in np.asarray(tokenizer(text))] for text in EXAMPLE_TEXTS]
    width = max(len(ids) for ids in example_ids)
    padded_ids = np.array([ids + [0] * (width - len(ids)) for ids in example_ids], np.int32)
    image_bytes_spec = {"image_bytes": tf.TensorSpec([None], tf.string)}
    signatures = [
        ExportSignature(
            "encode_image_bytes", encode_image_bytes, image_bytes_spec,
            {"image_bytes": image_bytes_example}, resources=resources,
            description="JPEG/PNG bytes -> unit-norm image embeddings",
        ),
        ExportSignature(
            "encode_images", encode_images, {"images": tf.TensorSpec([None, None, None, None], tf.uint8)},
            {"images": color[None, :4, :5]}, resources=resources,
            description="uint8 NHWC images (1-4 channels) -> unit-norm image embeddings",
        ),
        ExportSignature(
            "encode_texts", encode_texts, {"texts": tf.TensorSpec([None], tf.string)},
            {"texts": np.array(EXAMPLE_TEXTS, dtype=object)}, resources=text_resources,
            requires_tensorflow_text=True,
            description="strings -> unit-norm text embeddings (tokenizer in the graph; TF-Text ops)",
        ),
        ExportSignature(
            "encode_token_ids", encode_token_ids,
            {"token_ids": tf.TensorSpec([None, None], tf.int32), "lengths": tf.TensorSpec([None], tf.int32)},
            {"token_ids": padded_ids, "lengths": np.array([len(ids) for ids in example_ids], np.int32)},
            resources=resources,
            description="CLIP BPE ids without start/end + lengths -> unit-norm text embeddings (stock ops)",
        ),
    ]
    if class_names is not None:
        classifier = FlorenceImageClassifier.from_clip(clip, list(class_names), templates=list(templates),
                                                       compile=False)
        signatures.append(classify_signature(classifier, top_k=top_k, max_image_pixels=max_image_pixels))
    return signatures

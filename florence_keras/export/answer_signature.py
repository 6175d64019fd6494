"""`answer_signature`: image bytes + a question string -> a `FlorenceVQA`'s answer string and score."""

import tensorflow as tf

from florence_keras.data import image_decoding
from florence_keras.data.image_decoding import DEFAULT_MAX_PIXELS
from florence_keras.export.export_signature import ExportSignature
from florence_keras.export.serving_examples import example_image_bytes

ANSWER_SERVING_DEFAULT = "answer"
EXAMPLE_QUESTION = "is there a circle?"


def answer_signature(vqa, max_image_pixels=DEFAULT_MAX_PIXELS):
    """The `answer` signature of a `FlorenceVQA`.

    `answer(image_bytes: string [], question: string [])` -> `answer: string []`, `score: float32 []` (sigmoid of
    the chosen answer's logit) — what `vqa.predict(image, question)` returns. The image is decoded as the training
    pipeline decodes images (`decode_image_checked`; a refused image fails the request with the reason), then the
    model's own `image_inputs` (whole-image resize + normalisation) and `tokenize_questions` (the CLIP BPE
    tokenizer in the graph: TF-Text ops) run in the graph, so served and Keras answers agree.

    Args:
        vqa: a `FlorenceVQA` with a preprocessor (tokenizer and image converter).
        max_image_pixels: largest `height * width` an encoded image may declare.

    Returns:
        an `ExportSignature`.
    """
    preprocessor = getattr(vqa, "preprocessor", None)
    if preprocessor is None or preprocessor.image_converter is None or preprocessor.tokenizer is None:
        raise ValueError("`vqa` needs a preprocessor with a tokenizer and an image converter to be served.")
    if max_image_pixels <= 0:
        raise ValueError(f"`max_image_pixels` must be positive. Received: max_image_pixels={max_image_pixels}")
    if not preprocessor.built:
        preprocessor.build()
    reason_names = tf.constant([name for _, name in sorted(image_decoding.REASON_NAMES.items())])
    vocabulary = tf.constant(list(vqa.answer_vocabulary))

    def answer(image_bytes, question):
        image, reason = image_decoding.decode_image_checked(image_bytes, max_pixels=max_image_pixels)
        check = tf.debugging.Assert(
            tf.equal(reason, image_decoding.OK),
            [tf.strings.join(["answer: image_bytes (", tf.strings.as_string(tf.strings.length(image_bytes)),
                              " bytes) was refused: ", tf.gather(reason_names, reason), "."])],
        )
        with tf.control_dependencies([check]):
            image = tf.identity(image)
        token_ids = vqa.tokenize_questions(tf.reshape(question, [1]))
        logits = tf.cast(vqa({"images": vqa.image_inputs(image[None]), "token_ids": token_ids}, training=False),
                         tf.float32)[0]
        best = tf.argmax(logits, output_type=tf.int32)
        return {"answer": tf.gather(vocabulary, best), "score": tf.sigmoid(tf.gather(logits, best))}

    return ExportSignature(
        ANSWER_SERVING_DEFAULT, answer,
        {"image_bytes": tf.TensorSpec([], tf.string), "question": tf.TensorSpec([], tf.string)},
        {"image_bytes": example_image_bytes()[0], "question": EXAMPLE_QUESTION},
        resources={"model": vqa, "preprocessor": preprocessor}, requires_tensorflow_text=True,
        description="JPEG/PNG bytes of one image + a question -> the answer string and its score",
    )

"""The frozen encoders' outputs of a VQA training set, computed once (`FlorenceVQA.encode_images` /
`encode_questions`), for training the fusion and the head on them (`vqa_feature_dataset`)."""

import keras
import numpy as np
import tensorflow as tf


def cache_vqa_features(task, images, token_ids, batch_size=256, verbose=1):
    """Encodes every distinct image and question once.

    Args:
        task: a `FlorenceVQA` (its backbone frozen: the cache is only exact while the encoders do not change).
        images: uint8 `(M, S, S, 3)` distinct images at the Task's `image_size`.
        token_ids: int32 `(N, question_length)`, one row per training question.
        batch_size: images or questions per forward pass.
        verbose: 1 shows a progress bar.

    Returns:
        dict: `image_maps` float32 `(M, h, w, C)`; `text_tokens` float32 `(Q, L, D)` and `text_masks` int32
        `(Q, L)` for the Q distinct questions; `question_index` int32 `(N,)`, each question's row among them.
    """
    if task.backbone.trainable:
        raise ValueError("Cached features need a frozen backbone (`task.backbone.trainable = False`): a "
                         "trained encoder would drift away from its cached outputs.")
    token_ids = np.asarray(token_ids, np.int32)
    if len(images) == 0 or len(token_ids) == 0:
        raise ValueError(f"Nothing to encode: {len(images)} images, {len(token_ids)} questions.")
    distinct, question_index = np.unique(token_ids, axis=0, return_inverse=True)
    normalize = task.preprocessor.image_converter.normalizer()
    encode_images = tf.function(lambda x: task.encode_images(normalize(tf.cast(x, tf.float32))),
                                reduce_retracing=True)
    encode_questions = tf.function(task.encode_questions, reduce_retracing=True)
    total = -(-len(images) // batch_size) + -(-len(distinct) // batch_size)
    progress = keras.utils.Progbar(total, unit_name="batch") if verbose else None
    image_maps, text_tokens, text_masks = [], [], []
    for start in range(0, len(images), batch_size):
        image_maps.append(np.asarray(encode_images(tf.constant(images[start:start + batch_size])), np.float32))
        progress and progress.add(1)
    for start in range(0, len(distinct), batch_size):
        encoded = encode_questions(tf.constant(distinct[start:start + batch_size]))
        text_tokens.append(np.asarray(encoded["text_tokens"], np.float32))
        text_masks.append(np.asarray(encoded["text_mask"], np.int32))
        progress and progress.add(1)
    return {"image_maps": np.concatenate(image_maps), "text_tokens": np.concatenate(text_tokens),
            "text_masks": np.concatenate(text_masks), "question_index": question_index.reshape(-1).astype(np.int32)}

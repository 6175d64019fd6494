"""VQA training batches on cached encoder features: `{"image_map", "text_tokens", "text_mask", "answer_scores",
"labels"}` (what `FlorenceVQA.replica_loss` takes when the backbone is frozen)."""

import numpy as np
import tensorflow as tf

from florence_keras.data.vqa_dataset import check_extra_arrays

_plain = tf.autograph.experimental.do_not_convert


def vqa_feature_dataset(image_maps, image_index, text_tokens, text_masks, question_index, answer_scores, batch_size,
                        seed=0, extras=None):
    """Shuffled, repeated batches of cached features and soft answer targets.

    The features are stored once per distinct image and per distinct question (most questions repeat across
    images) and gathered per batch.

    Args:
        image_maps: float `(M, h, w, C)`, `FlorenceVQA.encode`'s `image_map` of each distinct image.
        image_index: int `(N,)`, the image of each training question.
        text_tokens: float `(Q, L, D)` and text_masks: int `(Q, L)`, `encode`'s `text_tokens` / `text_mask` of each
            distinct question.
        question_index: int `(N,)`, the row of each training question in `text_tokens`.
        answer_scores: float32 `(N, V)` soft targets.
        batch_size: int.
        seed: the shuffle seed.
        extras: optional dict of more per-question arrays (`(N, ...)`), batched under their keys (the attention
            targets of `florence_keras.data.vqa_grounding`).

    Returns:
        a `tf.data.Dataset` of dicts: `image_map` float32 `(B, h, w, C)`, `text_tokens` float32 `(B, L, D)`,
        `text_mask` int32 `(B, L)`, `answer_scores` float32 `(B, V)`, `labels` int64 `(B,)` (the question's row,
        the training system's batch contract).

    Example:
    >>> import numpy as np
    >>> ds = vqa_feature_dataset(np.zeros((2, 1, 1, 4)), [0, 1, 1], np.zeros((1, 3, 5)), np.ones((1, 3)),
    ...                          [0, 0, 0], np.eye(3, dtype="float32"), batch_size=2)
    >>> {k: tuple(v.shape) for k, v in next(iter(ds)).items()}["text_tokens"]
    (2, 3, 5)
    """
    image_index, question_index = np.asarray(image_index), np.asarray(question_index)
    count = int(len(image_index))
    if count == 0:
        raise ValueError("The VQA dataset is empty.")
    if not len(question_index) == len(answer_scores) == count:
        raise ValueError(f"One image index, question index and score row per question: {count}, "
                         f"{len(question_index)}, {len(answer_scores)}.")
    check_extra_arrays(extras, count)
    if image_index.min() < 0 or image_index.max() >= len(image_maps):
        raise ValueError(f"`image_index` must lie in [0, {len(image_maps)}).")
    if question_index.min() < 0 or question_index.max() >= len(text_tokens) or len(text_masks) != len(text_tokens):
        raise ValueError(f"`question_index` must lie in [0, {len(text_tokens)}) and `text_masks` must have "
                         f"{len(text_tokens)} rows.")
    tables = (tf.constant(image_maps, tf.float32), tf.constant(text_tokens, tf.float32),
              tf.constant(text_masks, tf.int32))
    dataset = tf.data.Dataset.from_tensor_slices({
        "image_index": tf.constant(image_index, tf.int32), "question_index": tf.constant(question_index, tf.int32),
        "answer_scores": tf.constant(answer_scores, tf.float32), "labels": tf.range(count, dtype=tf.int64),
        **{key: tf.constant(value) for key, value in (extras or {}).items()}})
    dataset = dataset.repeat().shuffle(min(count, 8192), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)

    @_plain
    def with_features(batch):
        images, questions = batch.pop("image_index"), batch.pop("question_index")
        batch["image_map"] = tf.gather(tables[0], images)
        batch["text_tokens"] = tf.gather(tables[1], questions)
        batch["text_mask"] = tf.gather(tables[2], questions)
        return batch

    return dataset.map(with_features, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

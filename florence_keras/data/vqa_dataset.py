"""The VQA training / evaluation stream: `{"images", "token_ids", "answer_scores", "labels"}` batches."""

import tensorflow as tf

_plain = tf.autograph.experimental.do_not_convert


def vqa_dataset(images, image_index, token_ids, answer_scores, batch_size, normalize, seed=0, repeat=True,
                drop_remainder=True, extras=None):
    """Batches of normalised images, question token ids and soft answer targets.

    Args:
        images: uint8 `(M, S, S, 3)` distinct images; image_index: int `(N,)`, the image of each question.
        token_ids: int32 `(N, L)` packed questions; answer_scores: float32 `(N, V)` soft targets.
        batch_size: int.
        normalize: callable on `(B, S, S, 3)` images -> normalised float (the preset converter's `normalizer()`).
        seed: the shuffle seed (training).
        repeat: True: shuffled, repeated for ever (training); False: one pass in order (evaluation).
        drop_remainder: bool.
        extras: optional dict of more per-question arrays (`(N, ...)`), batched under their keys (the attention
            targets of `florence_keras.data.vqa_grounding`).

    Returns:
        a `tf.data.Dataset` of dicts: `images` float32 `(B, S, S, 3)`, `token_ids` int32 `(B, L)`,
        `answer_scores` float32 `(B, V)`, `labels` int64 `(B,)` (the question's row; the training system's batch
        contract asks for it, the VQA loss does not read it). No image augmentation: a flip would turn "left"
        questions into "right" ones, and a crop can cut the asked-about object out.
    """
    count = int(len(image_index))
    if count == 0:
        raise ValueError("The VQA dataset is empty.")
    check_extra_arrays(extras, count)
    image_table = tf.constant(images)
    dataset = tf.data.Dataset.from_tensor_slices({
        "image_index": tf.constant(image_index, tf.int32), "token_ids": tf.constant(token_ids, tf.int32),
        "answer_scores": tf.constant(answer_scores, tf.float32), "labels": tf.range(count, dtype=tf.int64),
        **{key: tf.constant(value) for key, value in (extras or {}).items()}})
    if repeat:
        dataset = dataset.repeat().shuffle(min(count, 8192), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

    @_plain
    def with_images(batch):
        pixels = tf.gather(image_table, batch.pop("image_index"))
        batch["images"] = tf.cast(normalize(tf.cast(pixels, tf.float32)), tf.float32)
        return batch

    return dataset.map(with_images, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def check_extra_arrays(extras, count):
    """More per-question arrays: one row per question, under keys the batches do not use already."""
    for key, value in (extras or {}).items():
        if key in ("image_index", "question_index", "token_ids", "answer_scores", "labels", "images", "image_map",
                   "text_tokens", "text_mask"):
            raise ValueError(f"Extra batch key {key!r} is one the VQA batches use already.")
        if len(value) != count:
            raise ValueError(f"Extra batch array {key!r} has {len(value)} rows for {count} questions.")

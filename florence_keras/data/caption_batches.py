"""Training batches for captioning: `{"images": normalised float32 (B, S, S, 3), "token_ids": int32 (B, L)}`."""

import numpy as np
import tensorflow as tf


def caption_pairs(captions, vocabulary, max_length):
    """One training pair per reference caption.

    Args:
        captions: list (one per image) of lists of str.
        vocabulary: a `CaptionVocabulary`.
        max_length: int, the id rows' length.

    Returns:
        `(image_index int32 (P,), token_ids int32 (P, max_length))`.
    """
    image_index = np.array([i for i, texts in enumerate(captions) for _ in texts], np.int32)
    token_ids = vocabulary.encode([text for texts in captions for text in texts], max_length)
    return image_index, token_ids


def caption_dataset(images, image_index, token_ids, batch_size, normalize, seed=0, repeat=True,
                    drop_remainder=True):
    """A tf.data stream of captioning batches, shuffled (seeded) and repeated for training.

    Images are not augmented: a flip or shift would change what "on the left" or "to the right of" means.

    Args:
        images: uint8 `(N, S, S, 3)`.
        image_index: int32 `(P,)`, the image of each pair; token_ids: int32 `(P, L)` (`caption_pairs`).
        batch_size: int.
        normalize: callable on `(B, S, S, 3)` images -> normalised float (the preset converter's `normalizer()`).
        seed: int, the shuffle order.
        repeat: bool, shuffle and repeat for ever (training) or one pass in order.
        drop_remainder: bool.
    """
    if len(image_index) != len(token_ids) or len(image_index) == 0:
        raise ValueError(f"Need as many (>0) image indices as id rows. Received: {len(image_index)} and "
                         f"{len(token_ids)}")
    table = tf.constant(images)
    dataset = tf.data.Dataset.from_tensor_slices({"image_index": image_index, "token_ids": token_ids})
    if repeat:
        dataset = dataset.repeat().shuffle(min(len(image_index), 16384), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

    def finish(batch):
        pixels = tf.gather(table, batch["image_index"])
        return {"images": tf.cast(normalize(pixels), tf.float32), "token_ids": tf.cast(batch["token_ids"], tf.int32)}

    return dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)

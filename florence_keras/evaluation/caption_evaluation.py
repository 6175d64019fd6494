"""Captioning evaluation: generate captions for images, score them with the COCO caption toolkit."""

import time

from florence_keras.evaluation.caption_metrics import score_captions


def evaluate_captioning(captioner, images, image_ids, references, num_beams=None, length_penalty=None,
                        batch_size=32, use_java=None):
    """Captions `images` with `captioner.generate` and scores them (`caption_metrics.score_captions`).

    Args:
        captioner: a `FlorenceCaptioner`.
        images: uint8 `(N, H, W, 3)` raw images.
        image_ids: list of N ids (int or str); references: list of N lists of reference captions.
        num_beams, length_penalty: generation settings (None: the captioner's).
        batch_size: images per generation batch.
        use_java: see `score_captions`.

    Returns:
        dict: `scores` (`score_captions`'s result), `predictions` (COCO results format: list of
        `{"image_id", "caption"}`), `generation_seconds`.
    """
    if not len(images) == len(image_ids) == len(references):
        raise ValueError(f"images, image_ids and references differ in length: {len(images)}, {len(image_ids)}, "
                         f"{len(references)}")
    if len(set(image_ids)) != len(image_ids):
        raise ValueError("`image_ids` has duplicates.")
    start = time.time()
    captions = captioner.generate(images, num_beams=num_beams, length_penalty=length_penalty, batch_size=batch_size)
    seconds = time.time() - start
    scores = score_captions(dict(zip(image_ids, references)), dict(zip(image_ids, captions)), use_java=use_java)
    predictions = [{"image_id": image_id, "caption": caption} for image_id, caption in zip(image_ids, captions)]
    return {"scores": scores, "predictions": predictions, "generation_seconds": seconds}

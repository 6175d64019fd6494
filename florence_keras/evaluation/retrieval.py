"""Image-text retrieval recall (the COCO / Flickr30K protocol) with several captions per image.

* image -> text: an image query is correct at k if **any** of its captions ranks within the top k texts.
* text -> image: a caption query is correct at k if **its** image ranks within the top k images.

Candidates are ranked by cosine similarity; equal scores rank the lower index first (the tie rule of
`florence_keras.evaluation.metrics`). Similarities are computed block by block, so a 5k x 25k evaluation never
holds the full matrix twice.
"""

import numpy as np

from florence_keras.evaluation import _checks
from florence_keras.evaluation import metrics

_BLOCK_ELEMENTS = 1 << 22


def _normalize(x):
    x = np.asarray(x, dtype=np.result_type(x.dtype, np.float32))
    norm = np.sqrt(np.sum(x * x, axis=1, keepdims=True))
    return x / np.maximum(norm, np.finfo(x.dtype).tiny)


def _check_text_to_image(text_to_image, num_texts, num_images):
    text_to_image = _checks.as_index_vector(text_to_image, "text_to_image", size=num_texts, upper=num_images)
    captions_per_image = np.bincount(text_to_image, minlength=num_images)
    if np.any(captions_per_image == 0):
        missing = np.flatnonzero(captions_per_image == 0)
        raise ValueError(
            f"{missing.size} of {num_images} images have no caption in `text_to_image` (first: image "
            f"{missing[0]}); image->text recall is undefined for them. Drop those images first."
        )
    return text_to_image


def _ranks(num_images, num_texts, text_to_image, image_rows, text_rows):
    """Core: `image_rows(a, b)` -> similarities [b-a, T]; `text_rows(a, b)` -> similarities [b-a, I]."""
    order = np.argsort(text_to_image, kind="stable")  # captions grouped by image, ascending index
    starts = np.searchsorted(text_to_image[order], np.arange(num_images + 1))
    image_ranks = np.empty(num_images, dtype=np.int64)
    block = max(1, _BLOCK_ELEMENTS // num_texts)
    for a in range(0, num_images, block):
        b = min(a + block, num_images)
        rows = image_rows(a, b)
        captions = order[starts[a] : starts[b]]
        owner = text_to_image[captions] - a
        own_scores = rows[owner, captions]
        # The best caption of each image: highest score, ties to the lowest text index. Its rank is the
        # image's rank (every other own caption ranks after it under the tie rule).
        pick = np.lexsort((captions, -own_scores.astype(np.float64), owner))
        first = np.ones(pick.size, dtype=bool)
        first[1:] = owner[pick][1:] != owner[pick][:-1]
        best = np.empty(b - a, dtype=np.int64)
        best[owner[pick][first]] = captions[pick][first]
        image_ranks[a:b] = metrics.target_ranks(rows, best)
    text_ranks = np.empty(num_texts, dtype=np.int64)
    block = max(1, _BLOCK_ELEMENTS // num_images)
    for a in range(0, num_texts, block):
        b = min(a + block, num_texts)
        text_ranks[a:b] = metrics.target_ranks(text_rows(a, b), text_to_image[a:b])
    return image_ranks, text_ranks


def retrieval_ranks_from_similarity(similarity, text_to_image):
    """0-based ranks of the correct answers, from an image-text similarity matrix.

    Args:
        similarity: float `[I, T]`, `similarity[i, t]` = score of image i with text t.
        text_to_image: int `[T]`, the image each text describes; every image needs at least one text.

    Returns:
        `(image_ranks, text_ranks)`: int64 `[I]` (rank of the best-ranked own caption among all texts) and
        int64 `[T]` (rank of the own image among all images).

    Example:
    >>> image_ranks, text_ranks = retrieval_ranks_from_similarity(
    ...     [[0.9, 0.1, 0.8], [0.2, 0.7, 0.95]], text_to_image=[0, 1, 1])
    >>> image_ranks.tolist(), text_ranks.tolist()
    ([0, 0], [0, 0, 0])
    """
    similarity = _checks.as_matrix(similarity, "similarity")
    num_images, num_texts = similarity.shape
    text_to_image = _check_text_to_image(text_to_image, num_texts, num_images)
    return _ranks(
        num_images,
        num_texts,
        text_to_image,
        lambda a, b: similarity[a:b],
        lambda a, b: similarity[:, a:b].T,
    )


def retrieval_ranks(image_features, text_features, text_to_image):
    """Like `retrieval_ranks_from_similarity`, with cosine similarities computed block by block.

    Args:
        image_features: `[I, D]` image embeddings (L2-normalised here).
        text_features: `[T, D]` text embeddings (L2-normalised here).
        text_to_image: int `[T]`.

    Returns:
        `(image_ranks [I], text_ranks [T])`, int64, 0-based.
    """
    image_features = _normalize(_checks.as_matrix(image_features, "image_features"))
    text_features = _normalize(_checks.as_matrix(text_features, "text_features"))
    if image_features.shape[1] != text_features.shape[1]:
        raise ValueError(
            "`image_features` and `text_features` must have the same embedding size. Received: "
            f"{image_features.shape} and {text_features.shape}"
        )
    text_to_image = _check_text_to_image(text_to_image, text_features.shape[0], image_features.shape[0])
    return _ranks(
        image_features.shape[0],
        text_features.shape[0],
        text_to_image,
        lambda a, b: image_features[a:b] @ text_features.T,
        lambda a, b: text_features[a:b] @ image_features.T,
    )


def recall_at_k(ranks, ks=(1, 5, 10)):
    """`{k: fraction of ranks < k}` for 0-based ranks.

    Example:
    >>> recall_at_k([0, 3, 12], ks=(1, 5))
    {1: 0.3333333333333333, 5: 0.6666666666666666}
    """
    ks = _checks.check_ks(ks)
    ranks = _checks.as_index_vector(ranks, "ranks")
    if ranks.size == 0:
        raise ValueError("`ranks` is empty.")
    return {k: float(np.mean(ranks < k)) for k in ks}


def _summary(image_ranks, text_ranks, ks):
    image_recall = recall_at_k(image_ranks, ks)
    text_recall = recall_at_k(text_ranks, ks)
    result = {}
    for k in sorted(image_recall):
        result[f"image_to_text_R@{k}"] = image_recall[k]
    for k in sorted(text_recall):
        result[f"text_to_image_R@{k}"] = text_recall[k]
    result["rsum"] = float(sum(image_recall.values()) + sum(text_recall.values()))
    result["image_to_text_median_rank"] = float(np.median(image_ranks) + 1)
    result["text_to_image_median_rank"] = float(np.median(text_ranks) + 1)
    result["num_images"] = int(image_ranks.size)
    result["num_texts"] = int(text_ranks.size)
    return result


def retrieval_metrics(image_features, text_features, text_to_image, ks=(1, 5, 10)):
    """Recall@k in both directions, rsum and median ranks (1-based) from embeddings.

    Args:
        image_features: `[I, D]` image embeddings.
        text_features: `[T, D]` caption embeddings.
        text_to_image: int `[T]`, the image index of each caption.
        ks: the reported recalls.

    Returns:
        dict with `"image_to_text_R@k"`, `"text_to_image_R@k"` for each k (fractions), `"rsum"` (their sum),
        `"image_to_text_median_rank"`, `"text_to_image_median_rank"`, `"num_images"`, `"num_texts"`.

    Example:
    >>> m = retrieval_metrics([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.1], [0.1, 1.0], [0.9, 0.2]], [0, 1, 1], ks=(1,))
    >>> m["image_to_text_R@1"], m["text_to_image_R@1"]
    (1.0, 0.6666666666666666)
    """
    ks = _checks.check_ks(ks)
    return _summary(*retrieval_ranks(image_features, text_features, text_to_image), ks)


def retrieval_metrics_from_similarity(similarity, text_to_image, ks=(1, 5, 10)):
    """`retrieval_metrics` from a precomputed `[I, T]` similarity matrix."""
    ks = _checks.check_ks(ks)
    return _summary(*retrieval_ranks_from_similarity(similarity, text_to_image), ks)


def retrieve_top_k(query_features, gallery_features, k):
    """Indices `[Q, min(k, G)]` of the k most similar gallery items per query (cosine; ties: lower index).

    Example:
    >>> retrieve_top_k([[1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]], k=2).tolist()
    [[1, 2]]
    """
    query_features = _normalize(_checks.as_matrix(query_features, "query_features"))
    gallery_features = _normalize(_checks.as_matrix(gallery_features, "gallery_features"))
    if query_features.shape[1] != gallery_features.shape[1]:
        raise ValueError(
            "`query_features` and `gallery_features` must have the same embedding size. Received: "
            f"{query_features.shape} and {gallery_features.shape}"
        )
    return metrics.top_k_indices(query_features @ gallery_features.T, k)


def group_captions(image_ids):
    """Maps one image id per caption (any hashable: path, hash, COCO id) to image indices.

    Args:
        image_ids: sequence of length T, the image identifier of each caption.

    Returns:
        `(first_caption_of_image, text_to_image)`: int64 `[I]` (for each distinct image, in order of first
        appearance, the position of its first caption — use it to pick one image per id) and int64 `[T]`.

    Example:
    >>> first, text_to_image = group_captions(["a.jpg", "b.jpg", "a.jpg"])
    >>> first.tolist(), text_to_image.tolist()
    ([0, 1], [0, 1, 0])
    """
    index, first, text_to_image = {}, [], []
    for position, image_id in enumerate(image_ids):
        if image_id not in index:
            index[image_id] = len(first)
            first.append(position)
        text_to_image.append(index[image_id])
    if not first:
        raise ValueError("`image_ids` is empty.")
    return np.asarray(first, dtype=np.int64), np.asarray(text_to_image, dtype=np.int64)

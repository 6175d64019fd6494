import numpy as np
import pytest

from florence_keras.evaluation import retrieval


def brute_force_recalls(similarity, text_to_image, ks):
    """Sort every query's candidates (stable descending) and look for the first correct answer."""
    num_images, num_texts = similarity.shape
    image_hits = {k: [] for k in ks}
    for i in range(num_images):
        order = np.argsort(-similarity[i], kind="stable")
        first = min(position for position, t in enumerate(order) if text_to_image[t] == i)
        for k in ks:
            image_hits[k].append(first < k)
    text_hits = {k: [] for k in ks}
    for t in range(num_texts):
        order = np.argsort(-similarity[:, t], kind="stable")
        first = int(np.flatnonzero(order == text_to_image[t])[0])
        for k in ks:
            text_hits[k].append(first < k)
    return {k: np.mean(v) for k, v in image_hits.items()}, {k: np.mean(v) for k, v in text_hits.items()}


def random_problem(rng, num_images, max_captions, dim=8, tie_levels=None):
    counts = rng.integers(1, max_captions + 1, size=num_images)
    text_to_image = rng.permutation(np.repeat(np.arange(num_images), counts))
    images = rng.normal(size=(num_images, dim))
    texts = images[text_to_image] + rng.normal(size=(len(text_to_image), dim)) * 1.5
    if tie_levels:
        similarity = rng.integers(0, tie_levels, size=(num_images, len(text_to_image))).astype(np.float64)
    else:
        images /= np.linalg.norm(images, axis=1, keepdims=True)
        texts /= np.linalg.norm(texts, axis=1, keepdims=True)
        similarity = images @ texts.T
    return images, texts, text_to_image, similarity


@pytest.mark.parametrize("tie_levels", [None, 2, 4])
def test_matches_brute_force(tie_levels):
    rng = np.random.default_rng(tie_levels or 0)
    _, _, text_to_image, similarity = random_problem(rng, 40, 5, tie_levels=tie_levels)
    ks = (1, 5, 10)
    expected_i2t, expected_t2i = brute_force_recalls(similarity, text_to_image, ks)
    result = retrieval.retrieval_metrics_from_similarity(similarity, text_to_image, ks=ks)
    for k in ks:
        assert result[f"image_to_text_R@{k}"] == pytest.approx(expected_i2t[k])
        assert result[f"text_to_image_R@{k}"] == pytest.approx(expected_t2i[k])
    assert result["rsum"] == pytest.approx(sum(expected_i2t.values()) + sum(expected_t2i.values()))
    assert result["num_images"] == 40 and result["num_texts"] == len(text_to_image)


def test_features_path_equals_similarity_path_and_blocks(monkeypatch):
    rng = np.random.default_rng(7)
    images, texts, text_to_image, similarity = random_problem(rng, 30, 4)
    scaled_images = images * rng.uniform(0.1, 5.0, size=(30, 1))  # normalised inside
    expected = retrieval.retrieval_ranks_from_similarity(similarity, text_to_image)
    got = retrieval.retrieval_ranks(scaled_images, texts, text_to_image)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    monkeypatch.setattr(retrieval, "_BLOCK_ELEMENTS", 50)  # one or two rows per block
    blocked = retrieval.retrieval_ranks_from_similarity(similarity, text_to_image)
    np.testing.assert_array_equal(blocked[0], expected[0])
    np.testing.assert_array_equal(blocked[1], expected[1])


def test_hand_built_with_ties():
    # 2 images; texts 0,1 describe image 0, text 2 describes image 1.
    similarity = np.array(
        [
            [0.5, 0.5, 0.5],  # image 0: all tied -> text 0 (its own) ranks first
            [0.9, 0.1, 0.9],  # image 1: text 0 and its own text 2 tie; text 0 wins on index -> rank 1
        ]
    )
    image_ranks, text_ranks = retrieval.retrieval_ranks_from_similarity(similarity, [0, 0, 1])
    assert image_ranks.tolist() == [0, 1]
    # text 0: images tie 0.5 vs 0.9 -> image 1 first, own image 0 at rank 1
    # text 1: 0.5 vs 0.1 -> own image 0 first; text 2: 0.5 vs 0.9 -> own image 1 first
    assert text_ranks.tolist() == [1, 0, 0]
    result = retrieval.retrieval_metrics_from_similarity(similarity, [0, 0, 1], ks=(1, 2))
    assert result["image_to_text_R@1"] == 0.5 and result["image_to_text_R@2"] == 1.0
    assert result["text_to_image_R@1"] == pytest.approx(2 / 3)
    assert result["image_to_text_median_rank"] == 1.5


def test_any_caption_counts_for_image_queries():
    # Image 0 has captions 0 and 3; only caption 3 is ranked first. Image query still a hit at k=1.
    similarity = np.array([[0.1, 0.5, 0.4, 0.9], [0.2, 0.8, 0.7, 0.0], [0.3, 0.1, 0.9, 0.0]])
    image_ranks, _ = retrieval.retrieval_ranks_from_similarity(similarity, [0, 1, 2, 0])
    assert image_ranks.tolist() == [0, 0, 0]


def test_caption_tie_inside_own_captions_picks_lowest_index():
    similarity = np.array([[0.7, 0.9, 0.7, 0.9]])  # one image, own captions 0 and 2 tie; others better
    image_ranks, _ = retrieval.retrieval_ranks_from_similarity(np.vstack([similarity, [[0, 0, 0, 1.0]]]),
                                                               [0, 1, 0, 1])
    assert image_ranks.tolist() == [2, 0]


def test_errors():
    with pytest.raises(ValueError, match="no caption"):
        retrieval.retrieval_ranks_from_similarity(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="text_to_image"):
        retrieval.retrieval_ranks_from_similarity(np.zeros((2, 2)), [0, 2])
    with pytest.raises(ValueError, match="NaN"):
        retrieval.retrieval_ranks_from_similarity(np.array([[np.nan, 0.0]]), [0, 0])
    with pytest.raises(ValueError, match="embedding size"):
        retrieval.retrieval_ranks(np.ones((2, 3)), np.ones((2, 4)), [0, 1])


def test_retrieve_top_k_and_group_captions():
    top = retrieval.retrieve_top_k([[1.0, 0.0], [0.0, 2.0]], [[0.0, 1.0], [1.0, 0.0], [3.0, 0.0], [1.0, 1.0]], 3)
    assert top.tolist() == [[1, 2, 3], [0, 3, 1]]
    first, text_to_image = retrieval.group_captions(["b", "a", "b", "c", "a"])
    assert first.tolist() == [0, 1, 3]
    assert text_to_image.tolist() == [0, 1, 0, 2, 1]
    assert retrieval.recall_at_k([0, 4, 9, 10], ks=(1, 5, 10)) == {1: 0.25, 5: 0.5, 10: 0.75}

import numpy as np
import pytest

from florence_keras.evaluation import zero_shot

DIM = 6


class HashTextEncoder:
    """A deterministic stand-in text encoder: a fixed random vector per text (deliberately unnormalised)."""

    def __init__(self, dim=DIM):
        self.dim = dim
        self.calls = []

    def __call__(self, texts):
        self.calls.append(len(texts))
        out = []
        for text in texts:
            seed = sum(ord(c) * (i + 1) for i, c in enumerate(text))
            out.append(np.random.default_rng(seed).normal(size=self.dim) * 3.0)
        return np.stack(out).astype(np.float32)


def reference_classifier(encoder, class_names, templates):
    """Independent loop implementation of the CLIP prompt-ensemble classifier."""
    rows = []
    for name in class_names:
        embeddings = [encoder([t.format(name)])[0].astype(np.float64) for t in templates]
        embeddings = [e / np.linalg.norm(e) for e in embeddings]
        mean = np.mean(embeddings, axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return np.stack(rows)


def test_classifier_matches_reference_and_is_independent_of_batch_size():
    names = ["cat", "dog", "golden retriever", "car"]
    templates = ["a photo of a {}.", "a drawing of a {}.", "itap of the {}."]
    expected = reference_classifier(HashTextEncoder(), names, templates)
    encoder = HashTextEncoder()
    for batch_size in (1, 5, 100):
        weights = zero_shot.build_zero_shot_classifier(encoder, names, templates, batch_size=batch_size)
        assert weights.shape == (4, DIM) and weights.dtype == np.float32
        np.testing.assert_allclose(weights, expected, atol=1e-6)
    assert encoder.calls == [1] * 12 + [5, 5, 2] + [12]


def test_callable_templates_and_batching_calls():
    encoder = HashTextEncoder()
    weights = zero_shot.build_zero_shot_classifier(
        encoder, ["a", "b", "c"], [lambda c: f"photo of {c}", "{} again"], batch_size=4
    )
    assert encoder.calls == [4, 2]
    np.testing.assert_allclose(np.linalg.norm(weights, axis=1), 1.0, atol=1e-6)


def test_single_template_equals_normalised_embedding():
    encoder = HashTextEncoder()
    weights = zero_shot.build_zero_shot_classifier(encoder, ["x"], ["{}"])
    embedding = encoder(["x"])[0]
    np.testing.assert_allclose(weights[0], embedding / np.linalg.norm(embedding), atol=1e-6)


def test_bad_arguments():
    encoder = HashTextEncoder()
    with pytest.raises(ValueError, match="placeholder"):
        zero_shot.build_zero_shot_classifier(encoder, ["a"], ["no placeholder"])
    with pytest.raises(ValueError, match="empty"):
        zero_shot.build_zero_shot_classifier(encoder, [], ["{}"])
    with pytest.raises(ValueError, match="non-empty strings"):
        zero_shot.build_zero_shot_classifier(encoder, ["a", " "], ["{}"])
    with pytest.raises(ValueError, match="batch_size"):
        zero_shot.build_zero_shot_classifier(encoder, ["a"], ["{}"], batch_size=0)
    with pytest.raises(ValueError, match="\\[batch, dim\\]"):
        zero_shot.build_zero_shot_classifier(lambda t: np.zeros((1, 3)), ["a", "b"], ["{}"])
    with pytest.raises(ValueError, match="embedding size"):
        zero_shot.zero_shot_scores(np.ones((2, 3)), np.ones((4, 5)))


def test_accuracy_against_brute_force():
    rng = np.random.default_rng(0)
    classifier = rng.normal(size=(12, DIM))
    images = rng.normal(size=(80, DIM)) * rng.uniform(0.5, 4.0, size=(80, 1))
    labels = rng.integers(0, 12, size=80)
    result = zero_shot.zero_shot_accuracy(images, labels, classifier, ks=(1, 5))
    cosine = np.array(
        [[img @ c / (np.linalg.norm(img) * np.linalg.norm(c)) for c in classifier] for img in images]
    )
    order = np.argsort(-cosine, axis=1)
    assert result["top1"] == pytest.approx(np.mean(order[:, 0] == labels))
    assert result["top5"] == pytest.approx(np.mean([l in row[:5] for l, row in zip(labels, order)]))
    for c in range(12):
        members = labels == c
        if members.any():
            assert result["per_class_accuracy"][c] == pytest.approx(np.mean(order[members, 0] == c))
    indices, scores = zero_shot.zero_shot_classify(images, classifier, k=5)
    np.testing.assert_array_equal(indices, order[:, :5])
    np.testing.assert_allclose(scores, cosine, atol=1e-12)


def test_ties_between_classes_go_to_the_lower_index():
    # Classes 1 and 2 are mirror images across the x axis; an image on the x axis scores them equally.
    classifier = np.array([[-1.0, 0.0], [0.6, 0.8], [0.6, -0.8], [0.0, 1.0]])
    images = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    indices, _ = zero_shot.zero_shot_classify(images, classifier, k=3)
    assert indices.tolist() == [[1, 2, 3]] * 3
    result = zero_shot.zero_shot_accuracy(images, [1, 2, 3], classifier, ks=(1, 2, 5))
    assert result["top1"] == pytest.approx(1 / 3)  # only the label 1 image: it wins the tie
    assert result["top2"] == pytest.approx(2 / 3)
    assert result["top5"] == 1.0  # k beyond the number of classes counts everything


def test_degenerate_all_equal_scores_predict_class_zero():
    result = zero_shot.zero_shot_accuracy(np.zeros((3, 2)), [0, 1, 2], np.ones((3, 2)), ks=(1,))
    assert result["predictions"].tolist() == [0, 0, 0]
    assert result["top1"] == pytest.approx(1 / 3)

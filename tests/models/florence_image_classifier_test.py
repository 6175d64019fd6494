"""FlorenceImageClassifier: both heads' logits and losses against numpy, presets and .keras round trips."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from florence_keras.models import FlorenceCLIP
from florence_keras.models import FlorenceImageClassifier
from florence_keras.models.class_embedding_head import ClassEmbeddingHead
from tests.test_case import run_serialization_test

CLASS_NAMES = ["red circle", "blue square", "green star"]
TEMPLATES = ["a {}.", "a photo of a {}."]


def _clip(seed=0):
    from tests.model_fixtures import tiny_clip

    keras.utils.set_random_seed(seed)
    return tiny_clip()


def _raw_images(n=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 40, 36, 3)).astype("uint8")


@pytest.fixture(scope="module")
def unicl_classifier():
    return FlorenceImageClassifier.from_clip(_clip(), CLASS_NAMES, templates=TEMPLATES)


@pytest.fixture(scope="module")
def linear_classifier():
    classifier = FlorenceImageClassifier.from_clip(_clip(1), CLASS_NAMES, head="linear")
    rng = np.random.default_rng(3)
    classifier.head.kernel.assign(rng.normal(size=classifier.head.kernel.shape).astype("float32"))
    classifier.head.bias.assign(rng.normal(size=classifier.head.bias.shape).astype("float32"))
    return classifier


def _normalise(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_unicl_head_is_the_prompt_ensemble_zero_shot_classifier(unicl_classifier):
    clip = FlorenceCLIP(unicl_classifier.backbone, unicl_classifier.preprocessor)
    # Independent: embed every filled prompt, normalise, average per class, normalise (CLIP's ensemble).
    prompts = [[template.format(name) for template in TEMPLATES] for name in CLASS_NAMES]
    per_prompt = _normalise(np.asarray(clip.encode_texts(sum(prompts, []))).astype("float64"))
    weights = _normalise(per_prompt.reshape(len(CLASS_NAMES), len(TEMPLATES), -1).mean(axis=1))
    np.testing.assert_allclose(np.asarray(unicl_classifier.head.class_embeddings), weights, atol=1e-6)
    images = _raw_images()
    expected = float(unicl_classifier.backbone.logit_scale()) * np.asarray(clip.encode_images(images)) @ weights.T
    probabilities = unicl_classifier.predict_probabilities(images)
    expected_probabilities = np.exp(expected - expected.max(1, keepdims=True))
    expected_probabilities /= expected_probabilities.sum(1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected_probabilities, atol=1e-5)
    np.testing.assert_allclose(unicl_classifier.predict(images, verbose=0), expected, rtol=1e-4, atol=1e-4)


def test_classify_returns_top_k_names_ids_and_scores(unicl_classifier):
    images = _raw_images()
    result = unicl_classifier.classify(images, top_k=2)
    probabilities = unicl_classifier.predict_probabilities(images)
    order = np.argsort(-probabilities, axis=1)[:, :2]
    np.testing.assert_array_equal(result["class_ids"], order)
    assert result["class_names"].tolist() == [[CLASS_NAMES[i] for i in row] for row in order]
    np.testing.assert_allclose(result["scores"], np.take_along_axis(probabilities, order, 1), rtol=1e-6)
    assert unicl_classifier.classify(list(images[:2]), top_k=10)["class_ids"].shape == (2, 3)
    with pytest.raises(ValueError, match="top_k"):
        unicl_classifier.classify(images, top_k=0)
    with pytest.raises(ValueError, match="empty"):
        unicl_classifier.classify([])


def test_linear_head_reads_pooled_features_and_freezes_the_unused_towers(linear_classifier):
    backbone = linear_classifier.backbone
    pixels = linear_classifier.preprocessor.image_converter(_raw_images().astype("float32"))
    features = np.asarray(backbone.image_encoder(pixels)["pooled_output"]).astype("float64")
    kernel, bias = (np.asarray(w).astype("float64") for w in linear_classifier.head.weights)
    np.testing.assert_allclose(np.asarray(linear_classifier(pixels)), features @ kernel + bias, rtol=1e-5, atol=1e-5)
    trainable = {id(v) for v in linear_classifier.trainable_variables}
    for frozen in (backbone.text_encoder, backbone.text_projection, backbone.image_projection,
                   backbone.logit_scale_layer):
        assert not any(id(v) in trainable for v in frozen.weights)
    assert id(linear_classifier.head.kernel) in trainable
    assert linear_classifier.training_scalars() == {}
    with pytest.raises(ValueError, match="UniCL head"):
        linear_classifier.embed({"images": pixels, "token_ids": np.zeros((5, 77), "int32")})


def test_linear_head_loss_is_cross_entropy(linear_classifier):
    pixels = linear_classifier.preprocessor.image_converter(_raw_images().astype("float32"))
    labels = np.array([0, 2, 1, 1, 0])
    logits = np.asarray(linear_classifier(pixels)).astype("float64")
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    expected = -log_p[np.arange(5), labels].mean()
    np.testing.assert_allclose(float(linear_classifier.replica_loss({"images": pixels}, labels, training=False)),
                               expected, rtol=1e-5)
    np.testing.assert_allclose(float(linear_classifier.compute_loss(pixels, labels, logits)), expected, rtol=1e-5)


def test_unicl_head_loss_is_unicl_of_images_and_prompts(unicl_classifier):
    preprocessor = unicl_classifier.preprocessor
    labels = np.array([0, 2, 1, 1, 0])
    pixels = preprocessor.image_converter(_raw_images().astype("float32"))
    token_ids = preprocessor.tokenize([TEMPLATES[i % 2].format(CLASS_NAMES[c]) for i, c in enumerate(labels)])
    x = {"images": pixels, "token_ids": token_ids}
    u = np.asarray(unicl_classifier.backbone.embed_images(pixels)).astype("float64")
    v = np.asarray(unicl_classifier.backbone.embed_texts(token_ids)).astype("float64")
    s = float(unicl_classifier.backbone.logit_scale())
    positives = (labels[:, None] == labels[None, :]).astype("float64")
    expected = 0.0
    for logits in (s * u @ v.T, s * v @ u.T):
        log_p = logits - logits.max(1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
        expected += np.mean(-(positives * log_p).sum(1) / positives.sum(1))
    np.testing.assert_allclose(float(unicl_classifier.replica_loss(x, labels, training=False)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(unicl_classifier.compute_loss(x, labels, None, training=False)), expected,
                               rtol=1e-5)
    assert set(unicl_classifier.training_scalars()) == {"logit_scale"}
    with pytest.raises(ValueError, match="token_ids"):
        unicl_classifier.replica_loss({"images": pixels}, labels)


def _assert_same_classifier(a, b):
    assert (b.class_names, b.head_type, b.templates) == (a.class_names, a.head_type, a.templates)
    assert len(a.weights) == len(b.weights)
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    images = _raw_images(3, seed=5)
    np.testing.assert_array_equal(a.predict_probabilities(images), b.predict_probabilities(images))


@pytest.mark.parametrize("head", ["unicl", "linear"])
def test_preset_round_trip_is_bit_exact(head, unicl_classifier, linear_classifier, tmp_path):
    classifier = unicl_classifier if head == "unicl" else linear_classifier
    classifier.save_to_preset(str(tmp_path))
    assert os.path.exists(tmp_path / "task.weights.h5")
    revived = FlorenceImageClassifier.from_preset(str(tmp_path))
    assert isinstance(revived, FlorenceImageClassifier)
    _assert_same_classifier(classifier, revived)


@pytest.mark.parametrize("head", ["unicl", "linear"])
def test_keras_file_round_trip_is_bit_exact(head, unicl_classifier, linear_classifier, tmp_path):
    classifier = unicl_classifier if head == "unicl" else linear_classifier
    path = str(tmp_path / "classifier.keras")
    classifier.save(path)
    revived = keras.saving.load_model(path)  # safe_mode=True (the default)
    assert isinstance(revived, FlorenceImageClassifier)
    _assert_same_classifier(classifier, revived)


def test_from_a_clip_preset_builds_the_zero_shot_classifier(tiny_preset_dir):
    classifier = FlorenceImageClassifier.from_preset(tiny_preset_dir, class_names=CLASS_NAMES, templates=TEMPLATES)
    reference = FlorenceImageClassifier.from_clip(FlorenceCLIP.from_preset(tiny_preset_dir), CLASS_NAMES,
                                                  templates=TEMPLATES)
    np.testing.assert_allclose(np.asarray(classifier.head.class_embeddings),
                               np.asarray(reference.head.class_embeddings), atol=1e-6)


def test_fit_linear_head_on_raw_images_decreases_loss():
    classifier = FlorenceImageClassifier.from_clip(_clip(2), CLASS_NAMES, head="linear")
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2))
    images = _raw_images(6, seed=1)
    labels = np.array([0, 1, 2, 0, 1, 2])
    history = classifier.fit(images, labels, batch_size=6, epochs=4, verbose=0).history
    # The zero-initialised head starts every class at the same logit: loss log(3).
    np.testing.assert_allclose(history["loss"][0], np.log(3.0), rtol=1e-5)
    assert history["loss"][-1] < history["loss"][0]


def test_class_embedding_head_layer():
    head = ClassEmbeddingHead(3, 4)
    embeddings = _normalise(np.random.default_rng(0).normal(size=(2, 4))).astype("float32")
    run_serialization_test(head, [embeddings, np.float32(2.0)])
    assert not head.is_set()
    with pytest.raises(ValueError, match="unit-norm"):
        head.set_class_embeddings(np.ones((3, 4), "float32"))
    with pytest.raises(ValueError, match="shape"):
        head.set_class_embeddings(np.eye(4, dtype="float32"))


def test_bad_arguments():
    backbone = _clip().backbone
    with pytest.raises(ValueError, match="head='mlp'"):
        FlorenceImageClassifier(backbone, CLASS_NAMES, head="mlp")
    with pytest.raises(ValueError, match="at least 2 classes"):
        FlorenceImageClassifier(backbone, ["only"])
    with pytest.raises(ValueError, match="placeholder"):
        FlorenceImageClassifier(backbone, CLASS_NAMES, templates=["no placeholder"])
    with pytest.raises(ValueError, match="non-empty strings"):
        FlorenceImageClassifier(backbone, ["a", ""])
    with pytest.raises(ValueError, match="tokenizer"):
        FlorenceImageClassifier(backbone, CLASS_NAMES).update_class_embeddings()
    with pytest.raises(ValueError, match="image converter"):
        FlorenceImageClassifier(backbone, CLASS_NAMES).classify(_raw_images())
    with pytest.raises(ValueError, match="class ids"):
        FlorenceImageClassifier(backbone, CLASS_NAMES, head="linear").compute_loss(
            tf.zeros((1, 32, 32, 3)), None, tf.zeros((1, 3)))

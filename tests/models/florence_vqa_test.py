"""FlorenceVQA: shapes, question masking, loss against a hand computation, predict, presets, .keras, fit."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from florence_keras.layers.dense_label_decoder import DenseLabelDecoder
from florence_keras.models.florence_image_converter import IMAGENET_MEAN
from florence_keras.models.florence_image_converter import IMAGENET_STD
from florence_keras.models.florence_vqa import FlorenceVQA
from tests.model_fixtures import save_tiny_preset
from tests.model_fixtures import tiny_clip

VOCABULARY = ["yes", "no", "2", "red", "circle"]


def _vqa(**kwargs):
    keras.utils.set_random_seed(0)
    clip = tiny_clip()
    args = dict(answer_vocabulary=VOCABULARY, question_length=12, fusion_dim=16, fusion_layers=1, fusion_heads=2,
                dropout=0.0)
    args.update(kwargs)
    return FlorenceVQA(clip.backbone, clip.preprocessor, **args)


@pytest.fixture(scope="module")
def vqa():
    return _vqa()


def test_call_shape_tokens_and_frozen_parts(vqa):
    ids = vqa.tokenize_questions(["is there a red circle?", "how many objects are there?"])
    assert ids.shape == (2, 12) and ids.dtype == tf.int32
    ids = ids.numpy()
    assert ids[0, 0] == 49406 and (ids[:, -1] == 49407).all()
    mask = np.asarray(vqa.question_mask(ids))
    first_end = (ids == 49407).argmax(axis=1)
    for row in range(2):  # 1 up to and including the first end token, then 0
        assert mask[row, :first_end[row] + 1].all() and not mask[row, first_end[row] + 1:].any()
    logits = vqa({"images": np.zeros((2, 32, 32, 3), "float32"), "token_ids": ids})
    assert tuple(logits.shape) == (2, len(VOCABULARY))
    assert not vqa.backbone.text_projection.trainable and not vqa.backbone.logit_scale_layer.trainable
    # A question longer than the context is cut so its end token fits.
    assert vqa.tokenize_questions("word " * 40).shape == (12,)


def test_padding_after_the_question_changes_nothing(vqa):
    ids = vqa.tokenize_questions(["is there a circle?"]).numpy()
    images = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype("float32")
    base = np.asarray(vqa({"images": images, "token_ids": ids}))
    altered = ids.copy()
    end = int((ids[0] == 49407).argmax())
    altered[0, end + 1:] = 320  # any token after the first end token is padding
    np.testing.assert_allclose(np.asarray(vqa({"images": images, "token_ids": altered})), base, atol=1e-5)


def test_replica_loss_is_soft_target_bce_summed_over_answers(vqa):
    rng = np.random.default_rng(1)
    images = rng.normal(size=(3, 32, 32, 3)).astype("float32")
    ids = vqa.tokenize_questions(["a?", "b?", "c?"]).numpy()
    targets = np.zeros((3, len(VOCABULARY)), "float32")
    targets[0, 0], targets[1, 2], targets[1, 3], targets[2, 4] = 1.0, 0.6, 0.3, 0.9
    logits = np.asarray(vqa({"images": images, "token_ids": ids}), np.float64)
    p = 1 / (1 + np.exp(-logits))
    expected = -(targets * np.log(p) + (1 - targets) * np.log(1 - p)).sum(axis=1).mean()
    got = float(vqa.replica_loss({"images": images, "token_ids": ids, "answer_scores": targets},
                                 np.zeros(3, "int64"), training=False))
    assert got == pytest.approx(expected, rel=1e-4)
    vqa.compile()
    compiled = float(vqa.compute_loss(y=targets, y_pred=logits.astype("float32")))
    assert compiled == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="answer_scores"):
        vqa.replica_loss({"images": images, "token_ids": ids})


def test_check_training_batch(vqa):
    spec = {"images": tf.TensorSpec([None, 32, 32, 3], tf.float32), "token_ids": tf.TensorSpec([None, 12], tf.int32),
            "answer_scores": tf.TensorSpec([None, len(VOCABULARY)], tf.float32)}
    vqa.check_training_batch(spec, 32)
    with pytest.raises(ValueError, match="token_ids"):
        vqa.check_training_batch(dict(spec, token_ids=tf.TensorSpec([None, 77], tf.int32)), 32)
    with pytest.raises(ValueError, match="answer_scores"):
        vqa.check_training_batch({"images": spec["images"], "token_ids": spec["token_ids"]}, 32)


def test_predict_on_raw_images_and_strings(vqa):
    rng = np.random.default_rng(2)
    batch = rng.integers(0, 256, (3, 40, 50, 3)).astype("uint8")
    questions = ["is there a circle?", "how many objects are there?", "what colour is the square?"]
    out = vqa.predict(batch, questions, batch_size=2)
    # Independently: resize the whole image, normalise with the ImageNet statistics, tokenize, argmax, sigmoid.
    pixels = tf.image.resize(batch.astype("float32"), (32, 32), method="bilinear", antialias=True).numpy()
    pixels = ((pixels / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)).astype("float32")
    logits = np.asarray(vqa({"images": pixels, "token_ids": vqa.tokenize_questions(questions).numpy()}))
    assert out["answers"] == [VOCABULARY[i] for i in logits.argmax(1)]
    np.testing.assert_allclose(out["scores"], 1 / (1 + np.exp(-logits.max(1))), rtol=1e-4)
    one = vqa.predict(batch[0], questions[0])
    assert one["answers"] == out["answers"][0] and one["scores"] == pytest.approx(float(out["scores"][0]), rel=1e-4)
    with pytest.raises(ValueError, match="One question per image"):
        vqa.predict(batch, questions[:2])


def test_presets_and_keras_file_round_trip(tmp_path):
    clip_preset = save_tiny_preset(tmp_path / "clip")
    model = FlorenceVQA.from_preset(clip_preset, answer_vocabulary=VOCABULARY, question_length=10, fusion_dim=16,
                                    fusion_layers=1, fusion_heads=2)
    inputs = {"images": np.random.default_rng(3).normal(size=(2, 32, 32, 3)).astype("float32"),
              "token_ids": model.tokenize_questions(["is there a circle?", "how many?"]).numpy()}
    expected = np.asarray(model(inputs))
    model.save_to_preset(tmp_path / "vqa")
    again = FlorenceVQA.from_preset(str(tmp_path / "vqa"))
    assert again.answer_vocabulary == VOCABULARY and again.get_config() == model.get_config()
    np.testing.assert_allclose(np.asarray(again(inputs)), expected, rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "m.keras")
    revived = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(revived(inputs)), expected, rtol=1e-5, atol=1e-6)


def test_fit_learns_a_question_dependent_answer():
    model = _vqa(answer_vocabulary=["yes", "no"])
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    rng = np.random.default_rng(4)
    images = rng.normal(size=(16, 32, 32, 3)).astype("float32")
    questions = ["is it yes?", "is it no?"] * 8
    ids = model.tokenize_questions(questions).numpy()
    targets = np.array([[1, 0], [0, 1]] * 8, "float32")
    model.fit({"images": images, "token_ids": ids}, targets, epochs=15, batch_size=16, verbose=0)
    logits = np.asarray(model({"images": images, "token_ids": ids}))
    assert (logits.argmax(1) == targets.argmax(1)).all()


def test_bad_arguments():
    clip = tiny_clip()
    with pytest.raises(ValueError, match="answer_vocabulary"):
        FlorenceVQA(clip.backbone, clip.preprocessor, answer_vocabulary=[])
    with pytest.raises(ValueError, match="duplicate"):
        FlorenceVQA(clip.backbone, clip.preprocessor, answer_vocabulary=["yes", "yes"])
    with pytest.raises(ValueError, match="question_length"):
        FlorenceVQA(clip.backbone, clip.preprocessor, answer_vocabulary=["yes"], question_length=100)


def test_image_tokens_from_an_earlier_stage():
    model = _vqa(image_token_stage=0)
    ids = model.tokenize_questions(["is there a circle?"]).numpy()
    logits = model({"images": np.zeros((1, 32, 32, 3), "float32"), "token_ids": ids})
    assert tuple(logits.shape) == (1, len(VOCABULARY))
    assert model.get_config()["image_token_stage"] == 0 and not model.backbone.image_encoder.final_norm.trainable
    with pytest.raises(ValueError, match="image_token_stage"):
        _vqa(image_token_stage=5)


def test_cached_features_give_the_same_logits_and_loss():
    """`answer_logits(encode(x))` is the Task's forward pass; a cached-feature batch gives the same loss."""
    for stage in (None, 0):
        vqa = _vqa(image_token_stage=stage)
        rng = np.random.default_rng(3)
        images = rng.normal(size=(2, 32, 32, 3)).astype("float32")
        ids = vqa.tokenize_questions(["is there a circle?", "how many objects are there?"]).numpy()
        direct = np.asarray(vqa({"images": images, "token_ids": ids}))
        features = vqa.encode(images, ids)
        assert set(features) == set(vqa.FEATURE_KEYS)
        np.testing.assert_allclose(np.asarray(vqa.answer_logits(features)), direct, rtol=1e-5, atol=1e-6)
        targets = np.eye(len(VOCABULARY), dtype="float32")[[0, 2]]
        raw = float(vqa.replica_loss({"images": images, "token_ids": ids, "answer_scores": targets},
                                     training=False))
        cached = float(vqa.replica_loss({**features, "answer_scores": targets}, training=False))
        assert cached == pytest.approx(raw, rel=1e-5)
        spec = {k: tf.TensorSpec([None, *np.shape(v)[1:]], tf.as_dtype(np.asarray(v).dtype))
                for k, v in features.items()}
        spec["answer_scores"] = tf.TensorSpec([None, len(VOCABULARY)], tf.float32)
        vqa.check_training_batch(spec, 32)
        with pytest.raises(ValueError, match="image_map"):
            vqa.check_training_batch(dict(spec, image_map=tf.TensorSpec([None, 3, 3, 7], tf.float32)), 32)
        with pytest.raises(ValueError, match="text_mask"):
            vqa.replica_loss({"image_map": features["image_map"], "text_tokens": features["text_tokens"],
                              "answer_scores": targets})


def test_image_position_embedding_is_added_to_the_image_tokens():
    """The fusion sees `grid_tokens + position table` (each token its own row); without the option, the bare
    tokens. Checked against the layers composed by hand."""
    from florence_keras.models import fusion_tokens

    rng = np.random.default_rng(4)
    for with_positions in (True, False):
        vqa = _vqa(image_position_embedding=with_positions, image_token_stage=0)  # a map of several cells
        ids = vqa.tokenize_questions(["which side is the circle on?"]).numpy()
        features = vqa.encode(rng.normal(size=(1, 32, 32, 3)).astype("float32"), ids)
        tokens = np.asarray(fusion_tokens.grid_tokens(vqa.image_token_norm(features["image_map"])))
        if with_positions:  # as large as trained ones would be (the init, std 0.02, barely shows)
            table = vqa.image_position.position_embeddings
            assert tuple(table.shape) == tokens.shape[1:]
            table.assign(rng.normal(size=table.shape).astype("float32"))
            tokens = tokens + table.numpy()[None]

        def head(image_tokens):
            fused = vqa.fusion(features["text_tokens"], image_tokens, text_mask=features["text_mask"])
            hidden = keras.activations.gelu(vqa.head_norm(vqa.head_dense(fused["pooled_output"])), approximate=False)
            return np.asarray(vqa.head_output(hidden))

        got = np.asarray(vqa.answer_logits(features))
        np.testing.assert_allclose(got, head(tokens), rtol=1e-5, atol=1e-6)
        if with_positions:
            bare = np.asarray(fusion_tokens.grid_tokens(vqa.image_token_norm(features["image_map"])))
            assert np.abs(head(bare) - got).max() > 1e-3
    assert vqa.get_config()["image_position_embedding"] is False
    old = dict(_vqa().get_config())
    old.pop("image_position_embedding")  # a preset saved before the argument existed
    assert FlorenceVQA.from_config(old).image_position_embedding is False


def test_set_backbone_trainable_keeps_unused_parts_frozen(tmp_path):
    """A preset saved from a frozen run loads frozen (Keras keeps `trainable`); `set_backbone_trainable(True)`
    fine-tunes the encoders again, never the CLIP projections or logit scale."""
    vqa = _vqa(image_token_stage=0)
    vqa.set_backbone_trainable(False)
    assert not vqa.backbone.trainable_weights
    vqa.save_to_preset(str(tmp_path / "frozen"))
    loaded = FlorenceVQA.from_preset(str(tmp_path / "frozen"))
    assert not loaded.backbone.trainable_weights
    from florence_keras.models import fusion_weights

    settings = fusion_weights.fusion_settings(str(tmp_path / "frozen"))  # what train_vqa goes on from
    assert settings == {"fusion_dim": 16, "fusion_layers": 1, "fusion_heads": 2, "fusion_intermediate_dim": 64,
                        "image_token_stage": 0, "dropout": 0.0, "question_length": 12,
                        "image_position_embedding": True, "image_scales": (1,), "image_detail": False,
                        "image_summary": "mean", "question_prior": False, "dense_label_classes": 0,
                        "dense_label_channels": 96, "dense_label_sub_cells": 4, "dense_label_upsamplings": None}
    loaded.set_backbone_trainable(True)
    trainable = {id(v) for v in loaded.backbone.trainable_weights}
    assert trainable
    backbone = loaded.backbone
    for layer in (backbone.text_projection, backbone.image_projection, backbone.logit_scale_layer,
                  backbone.image_encoder.final_norm):
        assert not any(id(v) in trainable for v in layer.weights), layer.name
    assert any(id(v) in trainable for v in backbone.text_encoder.weights)


def test_multi_scale_image_tokens(tmp_path):
    """image_scales=(1, 2): the tokens are the encoder's map of the image and of the image resized ×2 (bilinear),
    cells concatenated — checked against the encoder called by hand; cached features, config and presets follow."""
    vqa = _vqa(image_scales=[1, 2])
    assert vqa.image_scales == (1, 2)
    rng = np.random.default_rng(5)
    images = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    ids = vqa.tokenize_questions(["what colour is the circle?", "how many objects are there?"]).numpy()
    encoder = vqa.backbone.image_encoder
    maps = [np.asarray(encoder.forward_features(x, training=False)["feature_map"])
            for x in (images, tf.image.resize(images, (64, 64), method="bilinear"))]
    expected = np.concatenate([m.reshape(2, -1, m.shape[-1]) for m in maps], axis=1)
    assert maps[1].shape[1] == 2 * maps[0].shape[1]
    features = vqa.encode(images, ids)
    np.testing.assert_allclose(np.asarray(features["image_map"]), expected, rtol=1e-5, atol=1e-5)
    assert vqa.image_position.sequence_length == 1 + expected.shape[1]
    direct = np.asarray(vqa({"images": images, "token_ids": ids}))
    # The fusion sees each scale's cells through its own LayerNorm + projection, then the mean token, positions.
    from florence_keras.models import fusion_tokens

    cut = maps[0].shape[1] * maps[0].shape[2]
    for projection in vqa.image_scale_projections:  # away from the init, so that a mix-up of scales shows
        projection.kernel.assign(rng.normal(size=projection.kernel.shape).astype("float32") * 0.2)
    parts = [vqa.image_scale_projections[k](vqa.image_scale_norms[k](part))
             for k, part in enumerate((expected[:, :cut], expected[:, cut:]))]
    tokens = np.asarray(fusion_tokens.grid_tokens(np.concatenate(parts, axis=1)))
    tokens = tokens + vqa.image_position.position_embeddings.numpy()[None]
    fused = vqa.fusion(features["text_tokens"], tokens, text_mask=features["text_mask"])
    by_hand = vqa.head_output(keras.activations.gelu(vqa.head_norm(vqa.head_dense(fused["pooled_output"])),
                                                     approximate=False))
    direct = np.asarray(vqa({"images": images, "token_ids": ids}))
    np.testing.assert_allclose(direct, np.asarray(by_hand), rtol=1e-5, atol=1e-5)
    swapped = [vqa.image_scale_projections[1 - k](vqa.image_scale_norms[1 - k](part))
               for k, part in enumerate((expected[:, :cut], expected[:, cut:]))]
    assert np.abs(np.asarray(swapped[0]) - np.asarray(parts[0])).max() > 1e-3
    np.testing.assert_allclose(np.asarray(vqa.answer_logits(features)), direct, rtol=1e-5, atol=1e-6)
    spec = {k: tf.TensorSpec([None, *np.shape(v)[1:]], tf.as_dtype(np.asarray(v).dtype)) for k, v in features.items()}
    spec["answer_scores"] = tf.TensorSpec([None, len(VOCABULARY)], tf.float32)
    vqa.check_training_batch(spec, 32)
    with pytest.raises(ValueError, match="image_map"):  # one scale's map is not what this Task reads
        vqa.check_training_batch(dict(spec, image_map=tf.TensorSpec([None, *maps[0].shape[1:]], tf.float32)), 32)
    assert vqa.get_config()["image_scales"] == [1, 2]
    vqa.save_to_preset(tmp_path / "vqa")
    again = FlorenceVQA.from_preset(str(tmp_path / "vqa"))
    assert again.image_scales == (1, 2)
    np.testing.assert_allclose(np.asarray(again({"images": images, "token_ids": ids})), direct, rtol=1e-5, atol=1e-6)
    old = dict(_vqa().get_config())
    old.pop("image_scales")  # a preset saved before the argument existed
    assert FlorenceVQA.from_config(old).image_scales == (1,)
    with pytest.raises(ValueError, match="image_scales"):
        _vqa(image_scales=[1, 1])


def test_image_detail_folds_the_finer_stage_under_each_token(tmp_path):
    """image_detail: each last-stage cell carries the 2×2 raw cells of the stage before (space-to-depth, checked
    against NumPy on the encoder called by hand); each folded cell goes through one LayerNorm; with two scales the
    per-scale projections map back to the stage's width; config, cached features and presets follow."""
    vqa = _vqa(image_scales=[1, 2], image_detail=True)
    rng = np.random.default_rng(7)
    images = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    ids = vqa.tokenize_questions(["what shape is the red object?", "is there a star?"]).numpy()
    encoder = vqa.backbone.image_encoder
    expected = []
    for x in (images, tf.image.resize(images, (64, 64), method="bilinear")):
        features = encoder.forward_features(x, training=False)
        before = f"P{len(features['pyramid'])}"  # the stage before the last (P{n+1})
        last, finer = np.asarray(features["feature_map"]), np.asarray(features["pyramid"][before])
        b, h, w, c = last.shape
        assert finer.shape == (b, 2 * h, 2 * w, c // 2)
        folded = np.zeros((b, h, w, 4, c // 2), "float32")
        for i in range(h):
            for j in range(w):
                folded[:, i, j] = np.stack([finer[:, 2 * i, 2 * j], finer[:, 2 * i, 2 * j + 1],
                                            finer[:, 2 * i + 1, 2 * j], finer[:, 2 * i + 1, 2 * j + 1]], axis=1)
        expected.append(np.concatenate([last, folded.reshape(b, h, w, 2 * c)], -1).reshape(b, h * w, 3 * c))
    expected = np.concatenate(expected, axis=1)
    features = vqa.encode(images, ids)
    np.testing.assert_allclose(np.asarray(features["image_map"]), expected, rtol=1e-5, atol=1e-5)
    own = expected.shape[-1] // 3
    assert [int(p.kernel.shape[1]) for p in vqa.image_scale_projections] == [own, own]
    # The first LayerNorm: per folded cell (C/2 channels), not over the whole token.
    norm = vqa.image_detail_norm
    norm.gamma.assign(rng.normal(size=norm.gamma.shape).astype("float32"))
    finer = expected[..., own:].reshape(2, -1, 4, own // 2)
    mean, var = finer.mean(-1, keepdims=True), finer.var(-1, keepdims=True)
    normed = ((finer - mean) / np.sqrt(var + 1e-5) * norm.gamma.numpy() + norm.beta.numpy()).reshape(2, -1, 2 * own)
    assert np.abs(np.asarray(norm(finer)).reshape(normed.shape) - normed).max() < 1e-4
    direct = np.asarray(vqa({"images": images, "token_ids": ids}))
    np.testing.assert_allclose(np.asarray(vqa.answer_logits(features)), direct, rtol=1e-5, atol=1e-6)
    assert vqa.get_config()["image_detail"] is True
    vqa.save_to_preset(tmp_path / "vqa")
    again = FlorenceVQA.from_preset(str(tmp_path / "vqa"))
    assert again.image_detail
    np.testing.assert_allclose(np.asarray(again({"images": images, "token_ids": ids})), direct, rtol=1e-5, atol=1e-6)
    from florence_keras.models import fusion_weights

    assert fusion_weights.fusion_settings(str(tmp_path / "vqa"))["image_detail"] is True
    old = dict(_vqa().get_config())
    old.pop("image_detail")  # a preset saved before the argument existed
    assert not FlorenceVQA.from_config(old).image_detail
    one_scale = _vqa(image_detail=True)  # one scale: the folded channels go to the fusion as they are
    assert one_scale.encode(images, ids)["image_map"].shape[-1] == 3 * own
    with pytest.raises(ValueError, match="image_detail"):  # stage 0 has no stage before it
        _vqa(image_token_stage=0, image_detail=True)


def test_pooled_image_summary_is_the_encoders_pooled_features(tmp_path):
    """image_summary="pooled": the image stream's first token is the first scale's token-stage channels averaged
    over its cells (the encoder's own pooled features, what its contrastive loss trained), through a LayerNorm and
    a projection, instead of the mean of all tokens; checked against NumPy on the encoder called by hand, with two
    scales and image_detail; config, cached features and presets follow."""
    vqa = _vqa(image_scales=[1, 2], image_detail=True, image_summary="pooled")
    rng = np.random.default_rng(11)
    images = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    ids = vqa.tokenize_questions(["which side is the red circle on?", "is there a star?"]).numpy()
    features = vqa.encode(images, ids)
    encoder_map = np.asarray(vqa.backbone.image_encoder.forward_features(images, training=False)["feature_map"])
    pooled = encoder_map.reshape(2, -1, encoder_map.shape[-1]).mean(axis=1)  # the encoder's pooled output
    for layer in (vqa.image_summary_norm, vqa.image_summary_projection):  # away from the init
        for weight in layer.weights:
            weight.assign(rng.normal(size=weight.shape).astype("float32") * 0.3)
    norm, projection = vqa.image_summary_norm, vqa.image_summary_projection
    mean, var = pooled.mean(-1, keepdims=True), pooled.var(-1, keepdims=True)
    normed = (pooled - mean) / np.sqrt(var + 1e-5) * norm.gamma.numpy() + norm.beta.numpy()
    summary = normed @ projection.kernel.numpy() + projection.bias.numpy()
    seen = {}
    original = vqa.fusion.call

    def spy(text_tokens, image_tokens, **kwargs):
        seen["image_tokens"] = np.asarray(image_tokens)
        return original(text_tokens, image_tokens, **kwargs)

    vqa.fusion.call = spy
    try:
        direct = np.asarray(vqa.answer_logits(features))
    finally:
        vqa.fusion.call = original
    positions = vqa.image_position.position_embeddings.numpy()
    np.testing.assert_allclose(seen["image_tokens"][:, 0] - positions[0], summary, rtol=1e-4, atol=1e-4)
    assert _vqa().image_summary == "mean"  # the default: the mean of the other tokens
    np.testing.assert_allclose(seen["image_tokens"][:, 1:] - positions[1:],
                               _cells_after_projection(vqa, features), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(vqa({"images": images, "token_ids": ids})), direct, rtol=1e-5, atol=1e-6)
    assert vqa.get_config()["image_summary"] == "pooled"
    vqa.save_to_preset(tmp_path / "vqa")
    again = FlorenceVQA.from_preset(str(tmp_path / "vqa"))
    assert again.image_summary == "pooled"
    np.testing.assert_allclose(np.asarray(again({"images": images, "token_ids": ids})), direct, rtol=1e-5, atol=1e-6)
    from florence_keras.models import fusion_weights

    assert fusion_weights.fusion_settings(str(tmp_path / "vqa"))["image_summary"] == "pooled"
    old = dict(_vqa().get_config())
    old.pop("image_summary")  # a preset saved before the argument existed
    assert FlorenceVQA.from_config(old).image_summary == "mean"
    one_scale = _vqa(image_summary="pooled")  # one scale, no detail: the pooled map, projected to its own width
    assert int(one_scale.image_summary_projection.kernel.shape[1]) == encoder_map.shape[-1]
    # One scale with image_detail (the recipe's defaults at --image_scales=1; it failed to build before session
    # 22): the pooled token is projected to the folded tokens' width C + 4·C/2, and it is the token-stage
    # channels (the first C) that are averaged.
    detail = _vqa(image_detail=True, image_summary="pooled")
    detail_features = detail.encode(images, ids)
    assert int(detail.image_summary_projection.kernel.shape[1]) == detail_features["image_map"].shape[-1] == (
        encoder_map.shape[-1] * 3)
    detail_pooled = np.asarray(detail_features["image_map"])[..., :encoder_map.shape[-1]]
    np.testing.assert_allclose(detail_pooled.reshape(2, -1, encoder_map.shape[-1]).mean(axis=1), pooled,
                               rtol=1e-4, atol=1e-4)
    assert np.all(np.isfinite(np.asarray(detail({"images": images, "token_ids": ids}))))
    stage0 = _vqa(image_token_stage=0, image_summary="pooled")  # an earlier stage: that stage's width
    stage0_map = stage0.encode(images, ids)["image_map"]
    assert int(stage0.image_summary_projection.kernel.shape[1]) == stage0_map.shape[-1]
    assert np.all(np.isfinite(np.asarray(stage0({"images": images, "token_ids": ids}))))
    with pytest.raises(ValueError, match="image_summary"):
        _vqa(image_summary="cls")


def _cells_after_projection(vqa, features):
    """The image tokens after the first (each scale's cells through its LayerNorm + projection), by hand."""
    image_map = np.asarray(features["image_map"])
    own = vqa._detail_channels[0]
    finer = image_map[..., own:].reshape(*image_map.shape[:2], 4, -1)
    finer = np.asarray(vqa.image_detail_norm(finer)).reshape(*image_map.shape[:2], -1)
    cells = np.concatenate([image_map[..., :own], finer], axis=-1)
    cut = vqa._scale_cells[0]
    return np.concatenate([np.asarray(vqa.image_scale_projections[k](vqa.image_scale_norms[k](part)))
                           for k, part in enumerate((cells[:, :cut], cells[:, cut:]))], axis=1)


def test_text_summary_dropout_zeroes_the_question_summary_in_training_only(tmp_path):
    """With rate 1 every training call (the functional graph on images + token ids, and `answer_logits` on cached
    features) is the inference computation with the text stream's first token zeroed; inference is unchanged; the
    rate is saved in the config and an older config without it loads with 0."""
    plain = _vqa()
    dropping = _vqa(text_summary_dropout=1.0)
    dropping.set_weights(plain.get_weights())  # (the dropout's generator takes a seed, so the inits differ)
    rng = np.random.default_rng(8)
    images = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    ids = dropping.tokenize_questions(["is there a circle?", "which side is the red square on?"]).numpy()
    inputs = {"images": images, "token_ids": ids}
    np.testing.assert_allclose(np.asarray(dropping(inputs)), np.asarray(plain(inputs)), rtol=1e-6, atol=1e-6)
    features = dropping.encode(images, ids)
    zeroed = dict(features, text_tokens=np.concatenate(
        [np.zeros_like(np.asarray(features["text_tokens"])[:, :1]), np.asarray(features["text_tokens"])[:, 1:]],
        axis=1))
    expected = np.asarray(plain.answer_logits(zeroed, training=False))
    assert not np.allclose(expected, np.asarray(plain(inputs)), atol=1e-4)  # the summary matters to this model
    np.testing.assert_allclose(np.asarray(dropping(inputs, training=True)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(dropping.answer_logits(features, training=True)), expected,
                               rtol=1e-5, atol=1e-5)
    assert dropping.get_config()["text_summary_dropout"] == 1.0
    dropping.save_to_preset(tmp_path / "vqa")
    assert FlorenceVQA.from_preset(str(tmp_path / "vqa")).text_summary_dropout == 1.0
    old = plain.get_config()
    del old["text_summary_dropout"]
    assert FlorenceVQA.from_config(old).text_summary_dropout == 0.0
    with pytest.raises(ValueError, match="rate"):
        _vqa(text_summary_dropout=1.5)


def _bce(targets, logits):
    logits = np.asarray(logits, np.float64)
    return (np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))).sum(axis=1)


def test_question_prior_is_a_product_of_experts_in_training_and_a_type_choice_at_inference(tmp_path):
    """`question_prior=True`: the loss is BCE(fusion + question-only logits) + BCE(question-only logits) on both
    training paths, the question-only branch learns from its own term only (its input and its share of the sum are
    cut from the gradient), and the Task's logits are the fusion's + log P(answer type | question) + the floored
    log-share of the answer within its type, from the branch's sigmoid scores, checked against NumPy."""
    types = ["yes/no", "yes/no", "number", "other", "other"]
    vqa = _vqa(question_prior=True, answer_types=types)
    vqa.prior_output.bias.assign(np.array([2.0, -4.0, 0.0, 0.0, -5.0], "float32"))  # preferences within types
    rng = np.random.default_rng(3)
    images = rng.normal(size=(3, 32, 32, 3)).astype("float32")
    ids = vqa.tokenize_questions(["is there a circle?", "how many?", "what colour is the circle?"]).numpy()
    features = vqa.encode(images, ids)
    main = np.asarray(vqa.answer_logits(features, training=False), np.float64)
    prior = np.asarray(vqa.question_prior_logits(features["text_tokens"]), np.float64)
    assert not np.allclose(prior, 0, atol=1e-3)
    # Inference: the fusion's logits + log of the type's share of the branch's sigmoid scores + the answer's
    # log-share within its type, floored at log(0.1) (the default).
    onehot = np.eye(3)[[("yes/no", "number", "other").index(t) for t in types]]
    scores = 1 / (1 + np.exp(-prior))
    mass = scores @ onehot
    type_log = np.log(mass / mass.sum(axis=1, keepdims=True) + 1e-6) @ onehot.T
    share = scores / (mass @ onehot.T)
    assert (share < 0.1).any() and (share > 0.1).any()  # the floor matters to this case
    expected = main + type_log + np.maximum(np.log(share), np.log(0.1))
    np.testing.assert_allclose(np.asarray(vqa({"images": images, "token_ids": ids})), expected, rtol=1e-5, atol=1e-5)
    for floor, within in ((1.0, 0.0), (0.0, np.log(share))):  # the type alone; the branch's full preferences
        other = _vqa(question_prior=True, answer_types=types, question_prior_floor=floor)
        other.set_weights(vqa.get_weights())
        np.testing.assert_allclose(np.asarray(other({"images": images, "token_ids": ids})), main + type_log + within,
                                   rtol=1e-5, atol=1e-5)
    # Training: the product of experts, on images + token ids and on cached features.
    targets = np.zeros((3, len(VOCABULARY)), "float32")
    targets[0, 0], targets[1, 2], targets[2, 3] = 1.0, 0.6, 0.9
    want = (_bce(targets, main + prior) + _bce(targets, prior)).mean()
    got = float(vqa.replica_loss({"images": images, "token_ids": ids, "answer_scores": targets}, training=False))
    assert got == pytest.approx(want, rel=1e-4)
    cached = float(vqa.replica_loss(dict(features, answer_scores=targets), training=False))
    assert cached == pytest.approx(want, rel=1e-4)
    vqa.compile()  # Keras' fit path: the same loss from x (y_pred holds the inference logits)
    compiled = float(vqa.compute_loss(x={"images": images, "token_ids": ids}, y=targets,
                                      y_pred=vqa({"images": images, "token_ids": ids}), training=False))
    assert compiled == pytest.approx(want, rel=1e-4)
    fitted = _vqa(question_prior=True, answer_types=types)
    fitted.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = np.asarray(fitted.prior_output.kernel).copy()
    fitted.fit({"images": images, "token_ids": ids}, targets, epochs=1, batch_size=3, verbose=0)
    assert not np.allclose(np.asarray(fitted.prior_output.kernel), before)  # fit trains the branch too
    # The branch's gradient is that of its own BCE alone (the sum's share is cut).
    kernel = vqa.prior_output.kernel
    with tf.GradientTape(persistent=True) as tape:
        loss = vqa.replica_loss(dict(features, answer_scores=targets), training=False)
        own = tf.reduce_mean(tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(
            targets, vqa.question_prior_logits(features["text_tokens"])), axis=1))
    np.testing.assert_allclose(tape.gradient(loss, kernel), tape.gradient(own, kernel), rtol=1e-4, atol=1e-7)
    assert tape.gradient(loss, vqa.head_output.kernel) is not None
    # Config, preset, an older config, bad types.
    assert vqa.get_config()["question_prior"] is True and vqa.get_config()["answer_types"] == types
    assert vqa.get_config()["question_prior_floor"] == 0.1
    vqa.save_to_preset(tmp_path / "vqa")
    loaded = FlorenceVQA.from_preset(str(tmp_path / "vqa"))
    assert loaded.question_prior and loaded.answer_types == types
    from florence_keras.models import fusion_weights

    assert fusion_weights.fusion_settings(str(tmp_path / "vqa"))["question_prior"] is True  # train_vqa goes on
    np.testing.assert_allclose(np.asarray(loaded({"images": images, "token_ids": ids})), expected, rtol=1e-5,
                               atol=1e-5)
    old = _vqa().get_config()
    del old["question_prior"], old["answer_types"]
    plain = FlorenceVQA.from_config(old)
    assert not plain.question_prior and plain.answer_types == ["other"] * len(VOCABULARY)
    with pytest.raises(ValueError, match="answer_types"):
        _vqa(question_prior=True, answer_types=["yes/no"])
    with pytest.raises(ValueError, match="answer_types"):
        _vqa(question_prior=True, answer_types=["colour"] * len(VOCABULARY))
    with pytest.raises(ValueError, match="question_prior_floor"):
        _vqa(question_prior=True, answer_types=types, question_prior_floor=1.5)


def test_grounding_loss_against_numpy_and_in_replica_loss():
    """The attention target: the cross-entropy of each named position's attention (mean over heads) against its
    target, averaged over layers, summed over the valid names; `replica_loss` adds it × `grounding_weight`."""
    rng = np.random.default_rng(7)
    attention = [rng.dirichlet(np.ones(5), size=(2, 3, 4)).astype("float32") for _ in range(2)]  # (B, H, Lt, Li)
    positions = np.array([[1, -1], [3, 9]], "int32")  # -1 and out-of-range positions are ignored
    targets = rng.dirichlet(np.ones(5), size=(2, 2)).astype("float32")
    want = np.zeros(2)
    for b, k in [(0, 0), (1, 0)]:
        for weights in attention:
            want[b] -= (targets[b, k] * np.log(weights[b, :, positions[b, k]].mean(0) + 1e-6)).sum() / 2
    got = np.asarray(FlorenceVQA.grounding_loss(attention, positions, targets))
    np.testing.assert_allclose(got, want, rtol=1e-5)

    vqa = _vqa(fusion_layers=2, grounding_weight=0.5)
    assert FlorenceVQA.from_config(vqa.get_config()).grounding_weight == 0.5
    images = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    ids = vqa.tokenize_questions(["is there a circle?", "what colour is the square?"]).numpy()
    scores = np.eye(len(VOCABULARY), dtype="float32")[[0, 3]]
    features = vqa.encode(images, ids)
    tokens = 1 + sum(g * g for g in vqa.image_token_grids)
    targets = rng.dirichlet(np.ones(tokens), size=(2, 2)).astype("float32")
    positions = np.array([[4, -1], [5, 2]], "int32")
    plain = float(vqa.replica_loss({**features, "answer_scores": scores}, training=False))
    grounded = float(vqa.replica_loss({**features, "answer_scores": scores, "grounding_positions": positions,
                                       "grounding_targets": targets}, training=False))
    _, attention = vqa.answer_logits(features, training=False, return_attention=True)
    extra = np.asarray(FlorenceVQA.grounding_loss(attention, positions, targets)).mean()
    assert grounded == pytest.approx(plain + 0.5 * extra, rel=1e-5) and extra > 0
    spec = {k: tf.TensorSpec([None, *np.shape(v)[1:]], tf.as_dtype(np.asarray(v).dtype)) for k, v in features.items()}
    spec["answer_scores"] = tf.TensorSpec([None, len(VOCABULARY)], tf.float32)
    spec["grounding_positions"] = tf.TensorSpec([None, 2], tf.int32)
    vqa.check_training_batch(dict(spec, grounding_targets=tf.TensorSpec([None, 2, tokens], tf.float32)), 32)
    with pytest.raises(ValueError, match="grounding_targets"):
        vqa.check_training_batch(dict(spec, grounding_targets=tf.TensorSpec([None, 2, tokens + 1], tf.float32)), 32)
    with pytest.raises(ValueError, match="grounding_weight"):
        _vqa(grounding_weight=-1.0)


def _block_mean(probabilities, rows, columns):
    """NumPy: `(B, S, S, K)` averaged over a `rows x columns` grid of equal blocks -> `(B, rows, columns, K)`."""
    b, height, width, k = probabilities.shape
    return probabilities.reshape(b, rows, height // rows, columns, width // columns, k).mean(axis=(2, 4))


def test_dense_label_probabilities_join_each_token_cell(tmp_path):
    """dense_label_classes: the decoder's per-pixel softmax (from the scale-1 pyramid), averaged over s×s
    sub-blocks of every token's cell (row-major, classes innermost) and inserted after the token's own channels,
    at every scale (NumPy on the encoder and decoder called by hand); the decoder is frozen and cut from the
    gradient; config, presets, cached features and old configs follow."""
    plain = _vqa(image_scales=[1, 2], image_detail=True)
    vqa = _vqa(image_scales=[1, 2], image_detail=True, dense_label_classes=3, dense_label_channels=8,
               dense_label_sub_cells=2)
    rng = np.random.default_rng(11)
    vqa.dense_label_decoder.set_weights([rng.normal(0, 0.5, w.shape).astype("float32")
                                         for w in vqa.dense_label_decoder.get_weights()])
    images = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    ids = vqa.tokenize_questions(["is the red circle partly hidden?", "is there a star?"]).numpy()
    pyramid = vqa.backbone.image_encoder.forward_features(images, training=False)["pyramid"]
    logits = np.asarray(vqa.dense_label_decoder([images, pyramid["P2"], pyramid["P3"]]))
    np.testing.assert_allclose(np.asarray(vqa.dense_label_logits(images)), logits, atol=1e-5)
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    base = np.asarray(plain.encode_images(images))  # (B, 4·4 + 8·8, C + 4·C/2): the same encoder's tokens
    own = base.shape[-1] // 3
    expected = []
    for grid in (4, 8):  # the scales' grids; each cell's 2x2 sub-blocks
        pooled = _block_mean(probabilities, 2 * grid, 2 * grid).reshape(2, grid, 2, grid, 2, 3)
        expected.append(pooled.transpose(0, 1, 3, 2, 4, 5).reshape(2, grid * grid, 12))
    expected = np.concatenate(expected, axis=1)
    image_map = np.asarray(vqa.encode_images(images))
    assert image_map.shape == base.shape[:2] + (base.shape[-1] + 12,)
    np.testing.assert_allclose(image_map[..., :own], base[..., :own], atol=1e-5)
    np.testing.assert_allclose(image_map[..., own:own + 12], expected, atol=1e-5)
    np.testing.assert_allclose(image_map[..., own + 12:], base[..., own:], atol=1e-5)
    # Frozen and cut from the gradient: no decoder weight trains, the loss's gradient never reaches it.
    decoder_weights = {id(w) for w in vqa.dense_label_decoder.weights}
    assert not decoder_weights & {id(w) for w in vqa.trainable_weights}
    vqa.dense_label_decoder.trainable = True
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(vqa({"images": images, "token_ids": ids}))
    assert all(g is None for g in tape.gradient(loss, vqa.dense_label_decoder.trainable_weights))
    vqa.dense_label_decoder.trainable = False
    direct = np.asarray(vqa({"images": images, "token_ids": ids}))
    np.testing.assert_allclose(np.asarray(vqa.answer_logits(vqa.encode(images, ids))), direct, rtol=1e-5, atol=1e-6)
    vqa.save_to_preset(tmp_path / "vqa")
    again = FlorenceVQA.from_preset(str(tmp_path / "vqa"))
    assert again.dense_label_classes == 3 and not again.dense_label_decoder.trainable
    np.testing.assert_allclose(np.asarray(again({"images": images, "token_ids": ids})), direct, rtol=1e-5, atol=1e-6)
    from florence_keras.models import fusion_weights

    settings = fusion_weights.fusion_settings(str(tmp_path / "vqa"))
    assert (settings["dense_label_classes"], settings["dense_label_channels"], settings["dense_label_sub_cells"],
            settings["dense_label_upsamplings"]) == (3, 8, 2, None)
    assert vqa.dense_label_decoder.num_upsamplings == 2  # (None: from the tiny encoder's stride 4 to the image)
    old = dict(plain.get_config())
    for name in ("dense_label_classes", "dense_label_channels", "dense_label_sub_cells", "dense_label_upsamplings"):
        old.pop(name)  # a preset saved before the arguments existed
    assert FlorenceVQA.from_config(old).dense_label_classes == 0
    with pytest.raises(ValueError, match="no dense label decoder"):
        plain.dense_label_logits(images)
    for bad in (dict(dense_label_classes=1), dict(dense_label_classes=-2), dict(dense_label_classes=3.0),
                dict(dense_label_classes=3, dense_label_sub_cells=0), dict(dense_label_channels=True),
                dict(dense_label_classes=3, dense_label_upsamplings=-1),
                dict(dense_label_classes=3, dense_label_upsamplings=1.0)):
        with pytest.raises(ValueError, match="dense_label"):
            _vqa(**bad)


def test_dense_labels_without_a_scale_of_one_and_uneven_sub_blocks():
    """No scale 1: the decoder reads the image's own pyramid all the same; 3×3 sub-blocks of a 4×4 grid on 32 px do
    not tile the image: an antialiased resize gives them."""
    vqa = _vqa(image_scales=[2], dense_label_classes=3, dense_label_channels=8, dense_label_sub_cells=3)
    images = np.random.default_rng(3).normal(size=(1, 32, 32, 3)).astype("float32")
    logits = np.asarray(vqa.dense_label_logits(images))
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    image_map = np.asarray(vqa.encode_images(images))
    grid = int(image_map.shape[1])
    assert image_map.shape[-1] == 32 + 27 and grid == 8  # (the scale-2 grid; tiny C = 32)
    pooled = image_map[..., 32:].reshape(1, grid, grid, 3, 3, 3).transpose(0, 1, 3, 2, 4, 5).reshape(1, 24, 24, 3)
    resized = tf.image.resize(probabilities, (24, 24), method="bilinear", antialias=True).numpy()
    np.testing.assert_allclose(pooled, resized, atol=1e-5)
    np.testing.assert_allclose(pooled.sum(-1), 1.0, atol=1e-4)  # still a distribution per sub-block


def test_fewer_dense_label_upsamplings_resize_the_logits_to_the_image(tmp_path):
    """dense_label_upsamplings=0: the decoder stops at its finest level (stride 4 here) and its logits are resized
    bilinearly to the image, the same as the decoder layer built alone with num_upsamplings=0; it is kept in the
    config and the preset, and a FlorenceVQA preset's settings name it."""
    vqa = _vqa(image_scales=[1], dense_label_classes=3, dense_label_channels=8, dense_label_upsamplings=0)
    decoder = vqa.dense_label_decoder
    assert decoder.num_upsamplings == 0 and vqa.get_config()["dense_label_upsamplings"] == 0
    rng = np.random.default_rng(5)
    decoder.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in decoder.get_weights()])
    images = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    pyramid = vqa.backbone.image_encoder.forward_features(images, training=False)["pyramid"]
    alone = DenseLabelDecoder(3, 8, num_upsamplings=0)
    alone([images, pyramid["P2"], pyramid["P3"]])
    alone.set_weights(decoder.get_weights())
    logits = np.asarray(vqa.dense_label_logits(images))
    assert logits.shape == (2, 32, 32, 3)
    np.testing.assert_allclose(logits, np.asarray(alone([images, pyramid["P2"], pyramid["P3"]])), atol=1e-5)
    vqa.save_to_preset(tmp_path / "vqa")
    assert FlorenceVQA.from_preset(str(tmp_path / "vqa")).dense_label_decoder.num_upsamplings == 0
    from florence_keras.models import fusion_weights

    assert fusion_weights.fusion_settings(str(tmp_path / "vqa"))["dense_label_upsamplings"] == 0

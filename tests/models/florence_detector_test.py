"""FlorenceDetector on a tiny backbone: outputs and anchors, decoding to input pixels, training, presets, zero-shot."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from florence_keras.models.florence_detector import FlorenceDetector
from tests.model_fixtures import tiny_clip

SIZE = 64


def _detector(**kwargs):
    keras.utils.set_random_seed(0)
    clip = tiny_clip(32)
    args = dict(image_size=SIZE, fpn_channels=16, num_head_blocks=0, num_tower_convs=1)
    args.update(kwargs)
    return FlorenceDetector(clip.backbone, ["circle", "square", "star"], preprocessor=clip.preprocessor, **args)


def _batch():
    boxes = np.array([[[4, 4, 30, 30], [0, 0, 0, 0]], [[10, 20, 50, 60], [30, 30, 44, 40]]], "float32")
    return {"images": np.random.default_rng(0).normal(size=(2, SIZE, SIZE, 3)).astype("float32"), "boxes": boxes,
            "classes": np.array([[1, 0], [2, 0]], "int32"), "box_mask": np.array([[1, 0], [1, 1]], "float32")}


def test_outputs_and_anchors():
    detector = _detector()
    out = detector(np.zeros((2, SIZE, SIZE, 3), "float32"))
    # The tiny CoSwin has 2 stages (strides 4, 8): levels 16², 8², then P6 4², P7 2².
    assert detector.strides == [4, 8, 16, 32] and detector.level_sizes == [256, 64, 16, 4]
    assert out["class_logits"].shape == (2, 340, 3) and out["box_deltas"].shape == (2, 340, 4)
    assert out["centerness"].shape == (2, 340)
    # Anchor 1 of level 0: centre (1.5 · 4, 0.5 · 4), side 8 · 4.
    np.testing.assert_allclose(detector.anchors[1], [6 - 16, 2 - 16, 6 + 16, 2 + 16])


def test_decode_maps_boxes_back_to_input_pixels():
    detector = _detector()
    n = detector.anchors.shape[0]
    index = 256 + 8 * 3 + 5  # level 1 (stride 8), row 3, column 5: anchor centre (44, 28), side 64
    logits = np.full((1, n, 3), -20.0, "float32")
    logits[0, index, 2] = 20.0
    centerness = np.full((1, n), -20.0, "float32")
    centerness[0, index] = 20.0
    outputs = {"class_logits": logits, "box_deltas": np.zeros((1, n, 4), "float32"), "centerness": centerness}
    # An 80 × 48 image (W × H) becomes 64 × 38 of the input: scales 0.8 and 38/48.
    _, scales = detector.detection_inputs(np.zeros((1, 48, 80, 3), "uint8"))
    np.testing.assert_allclose(np.asarray(scales), [0.8, 38 / 48, 0.8, 38 / 48], rtol=1e-6)
    found = detector.decode(outputs, scales, 48, 80)
    expected = np.array([44 - 32, 28 - 32, 44 + 32, 28 + 32]) / [0.8, 38 / 48, 0.8, 38 / 48]
    expected = np.clip(expected, 0, [80, 48, 80, 48])
    assert int(found["num_detections"][0]) == 1 and int(found["labels"][0, 0]) == 2
    np.testing.assert_allclose(np.asarray(found["boxes"][0, 0]), expected, rtol=1e-5)
    assert float(found["confidence"][0, 0]) > 0.99 and int(found["labels"][0, 1]) == -1


def test_training_lowers_the_loss_and_checks_batches():
    detector = _detector()
    batch = _batch()
    optimizer = keras.optimizers.Adam(3e-3)
    losses = []
    for _ in range(12):
        with tf.GradientTape() as tape:
            loss = detector.replica_loss(batch)
        grads = tape.gradient(loss, detector.trainable_variables)
        optimizer.apply_gradients(zip(grads, detector.trainable_variables))
        losses.append(float(loss))
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0]
    with pytest.raises(ValueError, match="missing"):
        detector.replica_loss({"images": batch["images"]})
    spec = tf.data.Dataset.from_tensors(batch).element_spec
    detector.check_training_batch(spec, SIZE)
    with pytest.raises(ValueError, match="box_mask"):
        detector.check_training_batch({k: v for k, v in spec.items() if k != "box_mask"}, SIZE)


def test_preset_and_keras_file_round_trip(tmp_path):
    detector = _detector(num_head_blocks=1, category_ids=[3, 5, 9])
    images = np.random.default_rng(1).integers(0, 255, (2, 40, 56, 3)).astype("uint8")
    expected = detector(detector.detection_inputs(images)[0])
    detector.save_to_preset(str(tmp_path / "preset"))
    restored = FlorenceDetector.from_preset(str(tmp_path / "preset"))
    assert restored.get_config()["category_ids"] == [3, 5, 9] and restored.num_head_blocks == 1
    got = restored(restored.detection_inputs(images)[0])
    for key in ("class_logits", "box_deltas", "centerness"):
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(expected[key]), atol=1e-5)
    detector.save(str(tmp_path / "detector.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "detector.keras"))
    np.testing.assert_allclose(np.asarray(loaded(detector.detection_inputs(images)[0])["class_logits"]),
                               np.asarray(expected["class_logits"]), atol=1e-5)
    out = restored.predict(list(images))
    assert out["boxes"].shape == (2, 100, 4) and out["num_detections"].shape == (2,)


def test_zero_shot_box_pooling_matches_numpy():
    detector = _detector(class_agnostic=True, freeze_backbone=True)
    assert detector.head.num_classes == 1
    assert not detector.backbone.image_encoder.trainable
    rng = np.random.default_rng(2)
    feature_map = rng.normal(size=(1, 8, 8, 32)).astype("float32")  # stride 8 over the 64-px input
    box = np.array([[[4.0, 10.0, 20.0, 16.0]]], "float32")
    names = rng.normal(size=(2, detector.backbone.projection_dim)).astype("float32")
    names /= np.linalg.norm(names, axis=1, keepdims=True)
    got = np.asarray(detector.box_class_probabilities(feature_map, box, names))
    # Cells overlapped: x in [4, 8) (4 px of cell 0), [8, 16) (8 px of cell 1), [16, 20) (4 px of cell 2);
    # y in [10, 16): 6 px of cell row 1. Area weights 4:8:4 on row 1.
    pooled = (4 * feature_map[0, 1, 0] + 8 * feature_map[0, 1, 1] + 4 * feature_map[0, 1, 2]) / 16
    embedding = pooled @ np.asarray(detector.backbone.image_projection.kernel)
    embedding /= np.linalg.norm(embedding)
    logits = float(np.asarray(detector.backbone.logit_scale_layer(embedding[None]))) * names @ embedding
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(got[0, 0], expected, atol=1e-5)
    detector.set_class_names(["ring", "cross"])
    assert detector.class_embeddings().shape == (2, detector.backbone.projection_dim)
    with pytest.raises(ValueError, match="class-agnostic"):
        _detector().set_class_names(["ring"])


def _softmax_of(detector, embeddings, names):
    scale = float(np.asarray(detector.backbone.logit_scale_layer(embeddings[:1])))
    logits = scale * embeddings @ names.T
    return np.exp(logits - logits.max(-1, keepdims=True)) / np.exp(logits - logits.max(-1, keepdims=True)).sum(
        -1, keepdims=True)


def test_zero_shot_crops_read_the_box_at_the_clip_size():
    # tiny_clip's encoder takes 32 px: a 32-px square box with context 1 is exactly that block of the input;
    # a 16-px box in the corner with context 2 reads 8 px of zeros (outside the input) on two sides.
    detector = _detector(class_agnostic=True, freeze_backbone=True, region_classifier="crops", crop_context=1.0)
    rng = np.random.default_rng(3)
    images = rng.normal(size=(1, SIZE, SIZE, 3)).astype("float32")
    names = rng.normal(size=(2, detector.backbone.projection_dim)).astype("float32")
    names /= np.linalg.norm(names, axis=1, keepdims=True)
    got = np.asarray(detector.crop_class_probabilities(images, np.array([[[16.0, 16.0, 48.0, 48.0]]], "float32"),
                                                       names))
    block = np.asarray(detector.backbone.embed_images(images[:, 16:48, 16:48]))
    np.testing.assert_allclose(got[0], _softmax_of(detector, block, names), atol=1e-5)

    detector.crop_context = 2.0
    got = np.asarray(detector.crop_class_probabilities(images, np.array([[[0.0, 0.0, 16.0, 16.0]]], "float32"),
                                                       names))
    padded = np.pad(images, ((0, 0), (8, 8), (8, 8), (0, 0)))[:, :32, :32]
    np.testing.assert_allclose(got[0], _softmax_of(detector, np.asarray(detector.backbone.embed_images(padded)),
                                                    names), atol=1e-5)


def test_zero_shot_crops_decode_keeps_the_best_boxes_and_round_trips(tmp_path):
    detector = _detector(class_agnostic=True, freeze_backbone=True, region_classifier="crops", crop_top_k=5,
                         max_detections=10)
    detector.set_class_names(["ring", "cross"])
    images = np.random.default_rng(4).uniform(0, 255, size=(2, 50, 70, 3)).astype("float32")
    inputs, scales = detector.detection_inputs(images)
    outputs = detector(inputs, training=False)
    with pytest.raises(ValueError, match="needs the model inputs"):
        detector.decode(outputs, scales, 50, 70)
    found = detector.decode(outputs, scales, 50, 70, inputs=inputs)
    assert found["boxes"].shape == (2, 10, 4)
    assert int(np.max(found["num_detections"])) <= 5 * 2  # at most crop_top_k boxes, each with 2 classes
    assert detector.predict(images)["boxes"].shape == (2, 10, 4)
    config = detector.get_config()
    assert (config["region_classifier"], config["crop_context"], config["crop_top_k"]) == ("crops", 1.5, 5)
    with pytest.raises(ValueError, match="region_classifier"):
        _detector(region_classifier="roi_align")


def test_zero_shot_crops_are_encoded_in_chunks_with_the_same_result():
    # 2 images x 70 boxes = 140 crops: three chunks of 64, the last padded; each crop as if encoded alone.
    from florence_keras.models import florence_detector

    detector = _detector(class_agnostic=True, freeze_backbone=True, region_classifier="crops")
    rng = np.random.default_rng(5)
    images = rng.normal(size=(2, SIZE, SIZE, 3)).astype("float32")
    corners = rng.uniform(0, 40, size=(2, 70, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(4, 24, size=(2, 70, 2))], axis=-1).astype("float32")
    names = rng.normal(size=(3, detector.backbone.projection_dim)).astype("float32")
    names /= np.linalg.norm(names, axis=1, keepdims=True)
    assert 2 * 70 > 2 * florence_detector.CROP_CHUNK
    chunked = np.asarray(detector.crop_class_probabilities(images, boxes, names))
    picks = [(0, 0), (0, 63), (1, 5), (1, 69)]
    alone = np.stack([np.asarray(detector.crop_class_probabilities(images[i:i + 1], boxes[i:i + 1, j:j + 1],
                                                                   names))[0, 0] for i, j in picks])
    np.testing.assert_allclose(chunked[[0, 0, 1, 1], [0, 63, 5, 69]], alone, atol=1e-5)

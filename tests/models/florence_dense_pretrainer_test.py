"""FlorenceDensePretrainer: UniCL + the dense loss, what trains, what is saved, and the recipe's use of it."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from florence_keras.losses.dense_label_loss import dense_label_loss
from florence_keras.models.florence_clip import FlorenceCLIP
from florence_keras.models.florence_dense_pretrainer import FlorenceDensePretrainer
from florence_keras.models.fusion_tokens import image_map
from tests.model_fixtures import tiny_clip

COUNTS = (3, 9, 9)


def _batch(rng, size=32, batch=8):
    kinds = [np.eye(c)[rng.integers(0, c, (batch, size, size))] for c in COUNTS]
    return {
        "images": rng.normal(size=(batch, size, size, 3)).astype("float32"),
        "token_ids": rng.integers(1, 400, (batch, 16)).astype("int32"),
        "dense_labels": np.concatenate(kinds, -1).astype("float32"),
    }, np.arange(batch, dtype="int64") % 5


def test_loss_is_unicl_plus_weighted_dense_terms():
    clip = tiny_clip(image_size=32)
    pretrainer = FlorenceDensePretrainer(clip.backbone, clip.preprocessor, dense_class_counts=COUNTS,
                                         dense_weight=0.7, high_resolution_fraction=0.25)
    x, y = _batch(np.random.default_rng(0))
    terms = pretrainer.loss_terms(x, y, training=False)
    # UniCL: the CLIP's own loss on the same backbone.
    assert abs(float(terms["unicl"]) - float(clip.replica_loss(x, y, training=False))) < 1e-5
    # Dense: the head on the fusion's map at 32 px, plus a quarter of the batch at 64 px weighted by 0.25.
    encoder = clip.backbone.image_encoder
    small = pretrainer.dense_head(image_map(encoder.forward_features(x["images"]), None, True))
    assert tuple(small.shape) == (8, 16, 16, 21)  # a 4x4 map, 4x4 sub-blocks per cell
    large_images = tf.image.resize(x["images"][:2], (64, 64), method="bilinear")
    large = pretrainer.dense_head(image_map(encoder.forward_features(large_images), None, True))
    expected = (dense_label_loss(small, x["dense_labels"], COUNTS)
                + 0.25 * dense_label_loss(large, x["dense_labels"][:2], COUNTS))
    assert abs(float(terms["dense"]) - float(expected)) < 1e-5
    assert abs(float(terms["loss"]) - float(terms["unicl"]) - 0.7 * float(terms["dense"])) < 1e-5


def test_gradients_reach_head_and_encoder_and_the_clip_leaves_the_head_out(tmp_path):
    clip = tiny_clip(image_size=32)
    pretrainer = FlorenceDensePretrainer(clip.backbone, clip.preprocessor, dense_class_counts=COUNTS)
    x, y = _batch(np.random.default_rng(1))
    variables = pretrainer.trainable_variables
    with tf.GradientTape() as tape:
        loss = pretrainer.replica_loss(x, y)
    grads = dict(zip([v.path for v in variables], tape.gradient(loss, variables)))
    head_paths = {v.path for v in pretrainer.dense_head.trainable_variables}
    assert head_paths and all(grads[p] is not None and float(tf.reduce_max(tf.abs(grads[p]))) > 0 for p in head_paths)
    encoder_grads = [grads[v.path] for v in clip.backbone.image_encoder.trainable_variables]
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in encoder_grads if g is not None) > 0
    saved = pretrainer.clip()
    assert isinstance(saved, FlorenceCLIP) and not isinstance(saved, FlorenceDensePretrainer)
    assert len(saved.weights) == len(pretrainer.weights) - len(pretrainer.dense_head.weights)
    config = pretrainer.get_config()
    assert config["dense_class_counts"] == list(COUNTS) and config["dense_weight"] == 1.0
    with pytest.raises(ValueError, match="dense_labels"):
        pretrainer.replica_loss({k: v for k, v in x.items() if k != "dense_labels"}, y)
    with pytest.raises(NotImplementedError, match="trainer"):
        pretrainer.compute_loss(x, y)


def test_bad_arguments():
    clip = tiny_clip(image_size=32)
    with pytest.raises(ValueError, match="dense_weight"):
        FlorenceDensePretrainer(clip.backbone, dense_weight=-1.0)
    with pytest.raises(ValueError, match="high_resolution_fraction"):
        FlorenceDensePretrainer(clip.backbone, high_resolution_fraction=1.5)


def test_pretrain_unicl_trains_the_head_and_saves_the_clip(tmp_path, tiny_preset_dir):
    from florence_keras.training.pretrain_unicl import pretrain_unicl

    settings = dict(preset=tiny_preset_dir, image_size=32, steps=2, global_batch_size=8, builtin_train=16,
                    builtin_heldout=8, builtin_test=8, warmup_steps=1, checkpoint_every=1, evaluate=None, verbose=0,
                    dense_aux_weight=1.0)
    result = pretrain_unicl(str(tmp_path / "run"), **settings)
    assert result["train"]["step"] == 2 and np.isfinite(result["train"]["loss"])
    preset = result["preset_dir"]
    with open(os.path.join(preset, "task.json")) as f:
        assert json.load(f)["class_name"] == "FlorenceCLIP"
    with open(os.path.join(preset, "metadata.json")) as f:
        assert json.load(f)["florence_training"]["dense_aux_weight"] == 1.0
    trained = FlorenceCLIP.from_preset(preset)
    start = FlorenceCLIP.from_preset(tiny_preset_dir)
    changed = [not np.array_equal(a, b) for a, b in zip(trained.get_weights(), start.get_weights())]
    assert len(changed) == len(start.get_weights()) and any(changed)
    with pytest.raises(ValueError, match="built-in data"):
        pretrain_unicl(str(tmp_path / "other"), train_data=str(tmp_path / "x.csv"), **settings)
    with pytest.raises(ValueError, match="gradient cache"):
        pretrain_unicl(str(tmp_path / "other"), gradient_cache_chunk=4, **settings)
    with pytest.raises(ValueError, match="colour labels"):
        pretrain_unicl(str(tmp_path / "other"), greyscale_probability=0.5, **settings)

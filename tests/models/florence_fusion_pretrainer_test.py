"""FlorenceFusionPretrainer: shapes, losses at init, training lowers the loss, preset round trip, VQA start."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from florence_keras.models.florence_fusion_pretrainer import FlorenceFusionPretrainer
from florence_keras.models.florence_vqa import FlorenceVQA
from florence_keras.models.fusion_weights import is_fusion_pretrainer_preset
from tests.model_fixtures import tiny_clip

FUSION = dict(fusion_dim=16, fusion_layers=1, fusion_heads=2)
TEXTS = ["a red circle", "a blue star on the left", "two objects", "a green square", "a red circle",
         "a small hexagon"]


def _pretrainer(**kwargs):
    keras.utils.set_random_seed(0)
    clip = tiny_clip()
    args = dict(text_length=12, dropout=0.0, seed=1, **FUSION)
    args.update(kwargs)
    return FlorenceFusionPretrainer(clip.backbone, clip.preprocessor, **args)


@pytest.fixture(scope="module")
def pretrainer():
    return _pretrainer()


@pytest.fixture(scope="module")
def batch(pretrainer):
    images = np.random.default_rng(0).normal(size=(len(TEXTS), 32, 32, 3)).astype("float32")
    return {"images": images, "token_ids": pretrainer.tokenize_texts(TEXTS).numpy()}


def test_call_config_and_frozen_parts(pretrainer, batch):
    assert tuple(pretrainer(batch).shape) == (len(TEXTS), 2)
    assert pretrainer.mask_token_id == 49406 and pretrainer.random_token_high == 49406
    assert pretrainer.max_predictions == 2  # ceil(0.15 * 10)
    assert not pretrainer.backbone.text_projection.trainable and not pretrainer.backbone.logit_scale_layer.trainable
    config = pretrainer.get_config()
    for key in ("text_length", "fusion_dim", "mlm_rate", "mask_token_id", "tie_mlm_decoder", "seed"):
        assert key in config
    with pytest.raises(ValueError, match="mlm_rate"):
        _pretrainer(mlm_rate=0.0)
    with pytest.raises(ValueError, match="mask_token_id"):
        _pretrainer(mask_token_id=49407)


def test_losses_at_init_and_their_sum(pretrainer, batch):
    terms = {k: float(v) for k, v in pretrainer.loss_terms(batch, np.arange(len(TEXTS)), training=False).items()}
    # Near-uniform heads at init: ITM ~ ln 2, MLM ~ ln 49408.
    assert abs(terms["itm"] - np.log(2)) < 0.1 and abs(terms["mlm"] - np.log(49408)) < 1.0
    np.testing.assert_allclose(terms["loss"], terms["itm"] + terms["mlm"], rtol=1e-6)
    assert terms["negatives_found"] == 1.0  # texts 0 and 4 are equal, yet each has other candidates
    # A batch where every example shares a label has no negatives: ITM is over the positives only.
    same = pretrainer.loss_terms(batch, np.zeros(len(TEXTS), np.int64), training=False)
    assert float(same["negatives_found"]) == 0.0 and np.isfinite(float(same["loss"]))


def test_batch_check_names_the_problem(pretrainer):
    spec = {"images": tf.TensorSpec((None, 32, 32, 3), tf.float32), "token_ids": tf.TensorSpec((None, 12), tf.int32)}
    pretrainer.check_training_batch(spec, 32)
    with pytest.raises(ValueError, match="token_ids"):
        pretrainer.check_training_batch({**spec, "token_ids": tf.TensorSpec((None, 20), tf.int32)}, 32)
    with pytest.raises(ValueError, match="missing"):
        pretrainer.check_training_batch({"images": spec["images"]}, 32)


def test_a_few_training_steps_lower_the_loss(batch):
    model = _pretrainer()
    optimizer = keras.optimizers.Adam(3e-3)
    variables = model.trainable_variables
    labels = np.arange(len(TEXTS))

    def loss_value():
        keras.utils.set_random_seed(3)  # the same negatives and masks for the before / after comparison
        model.seed_generator.state.assign(np.array([3, 0], np.uint32).astype(model.seed_generator.state.dtype))
        return float(model.loss_terms(batch, labels, training=False)["loss"])

    before = loss_value()
    for _ in range(8):
        with tf.GradientTape() as tape:
            loss = model.replica_loss(batch, labels)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    assert loss_value() < before - 0.5


def test_preset_round_trip_and_vqa_start(pretrainer, batch, tmp_path):
    preset = os.path.join(tmp_path, "fusion_preset")
    pretrainer.save_to_preset(preset)
    assert is_fusion_pretrainer_preset(preset)
    loaded = FlorenceFusionPretrainer.from_preset(preset)
    assert loaded.get_config()["text_length"] == 12
    for a, b in zip(pretrainer.weights, loaded.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose(np.asarray(loaded(batch)), np.asarray(pretrainer(batch)), atol=1e-6)
    # A VQA built from the preset starts from its backbone and fusion (its head is new).
    vqa = FlorenceVQA.from_preset(preset, answer_vocabulary=["yes", "no"], question_length=12, dropout=0.0,
                                  **FUSION)
    for name in ("fusion", "backbone"):
        for a, b in zip(getattr(vqa, name).get_weights(), getattr(pretrainer, name).get_weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="fusion_dim: 16 \\(pretrained\\) vs 32"):
        FlorenceVQA.from_preset(preset, answer_vocabulary=["yes"], question_length=12, fusion_dim=32,
                                fusion_layers=1, fusion_heads=2)

"""FlorenceDepthEstimator: shapes, predict at the input resolution, presets, .keras, loss and compile defaults."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from florence_keras.losses.depth_metric import DepthMetric
from florence_keras.losses.scale_invariant_log_loss import ScaleInvariantLogLoss
from florence_keras.models.florence_depth_estimator import FlorenceDepthEstimator
from florence_keras.models.florence_image_converter import IMAGENET_MEAN
from florence_keras.models.florence_image_converter import IMAGENET_STD
from tests.model_fixtures import save_tiny_preset
from tests.model_fixtures import tiny_clip


@pytest.fixture(scope="module")
def estimator():
    keras.utils.set_random_seed(0)
    clip = tiny_clip()
    return FlorenceDepthEstimator(clip.backbone, clip.preprocessor, decoder_channels=8)


def test_call_shape_and_frozen_parts(estimator):
    depth = estimator(np.zeros((2, 32, 32, 3), "float32"))
    assert tuple(depth.shape) == (2, 32, 32)
    assert not estimator.backbone.text_encoder.trainable and not estimator.backbone.image_encoder.final_norm.trainable
    assert estimator.has_task_weights()


def test_predict_returns_metres_at_each_input_size(estimator):
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (3, 45, 70, 3)).astype("uint8")
    depth = estimator.predict(batch, batch_size=2)
    assert depth.shape == (3, 45, 70) and depth.dtype == np.float32 and (depth > 0).all()
    # Independently: resize the whole image, normalise with the ImageNet statistics, run, resize back.
    pixels = tf.image.resize(batch.astype("float32"), (32, 32), method="bilinear", antialias=True).numpy()
    pixels = (pixels / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    raw = np.asarray(estimator(pixels.astype("float32")))
    expected = tf.image.resize(raw[..., None], (45, 70), method="bilinear").numpy()[..., 0]
    np.testing.assert_allclose(depth, expected, rtol=1e-4, atol=1e-5)
    one = estimator.predict(batch[0])
    np.testing.assert_allclose(one, depth[0], rtol=1e-5)
    mixed = estimator.predict([batch[0], rng.integers(0, 256, (20, 24, 1)).astype("uint8")])
    assert [m.shape for m in mixed] == [(45, 70), (20, 24)]
    with pytest.raises(ValueError, match="shape"):
        estimator.predict(np.zeros((4, 4)))


def test_compile_defaults_and_replica_loss(estimator):
    estimator.compile()
    assert isinstance(estimator.task_loss, ScaleInvariantLogLoss)
    assert estimator.task_loss.lam == 0.85 and estimator.task_loss.gradient_weight == 0.5
    rng = np.random.default_rng(1)
    images = rng.normal(size=(4, 32, 32, 3)).astype("float32")
    depth = rng.uniform(1.0, 8.0, (4, 32, 32)).astype("float32")
    depth[0, :5] = 0.0
    expected = float(estimator.task_loss(depth, estimator(images)))
    got = float(estimator.replica_loss({"images": images, "depth": depth}, None, training=False))
    assert got == pytest.approx(expected, rel=1e-5)
    logs = estimator.evaluate(images, depth, batch_size=4, verbose=0, return_dict=True)
    assert set(logs) >= {"loss", "abs_rel", "delta1"}
    assert logs["abs_rel"] == pytest.approx(float(DepthMetric("abs_rel")(depth, estimator(images))), rel=1e-5)


def test_check_training_batch_names_misfits(estimator):
    import tensorflow as tf

    def spec(images=(4, 32, 32, 3), depth=(4, 32, 32), **extra):
        return {"images": tf.TensorSpec(images, tf.float32), "depth": tf.TensorSpec(depth, tf.float32), **extra}

    estimator.check_training_batch(spec(), 32)  # no token_ids / labels needed
    estimator.check_training_batch(spec(images=(None, None, None, 3), depth=(None, None, None)), 32)
    with pytest.raises(ValueError, match=r"missing \['depth'\]"):
        estimator.check_training_batch({"images": tf.TensorSpec((4, 32, 32, 3), tf.float32)}, 32)
    with pytest.raises(ValueError, match="'depth' must be float of rank 3"):
        estimator.check_training_batch(spec(depth=(4, 32, 32, 1)), 32)
    with pytest.raises(ValueError, match="'depth' must have the images' width"):
        estimator.check_training_batch(spec(depth=(4, 32, 16)), 32)
    with pytest.raises(ValueError, match="takes 32x32 images; training asks for 64x64"):
        estimator.check_training_batch(spec(images=(4, 64, 64, 3), depth=(4, 64, 64)), 64)


def test_fit_reduces_the_loss():
    keras.utils.set_random_seed(1)
    clip = tiny_clip()
    model = FlorenceDepthEstimator(clip.backbone, clip.preprocessor, decoder_channels=8)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    rng = np.random.default_rng(2)
    images = rng.normal(size=(8, 32, 32, 3)).astype("float32")
    depth = np.broadcast_to(np.linspace(1.0, 9.0, 32, dtype="float32")[None, :, None], (8, 32, 32)).copy()
    history = model.fit(images, depth, epochs=6, batch_size=8, verbose=0).history["loss"]
    assert history[-1] < 0.7 * history[0]


def test_presets_and_keras_file_round_trip(tmp_path):
    clip_preset = save_tiny_preset(tmp_path / "clip")
    model = FlorenceDepthEstimator.from_preset(clip_preset, decoder_channels=8, image_size=64)
    assert model.image_size == 64 and tuple(model.output.shape) == (None, 64, 64)
    images = np.random.default_rng(3).normal(size=(2, 64, 64, 3)).astype("float32")
    expected = np.asarray(model(images))
    model.save_to_preset(tmp_path / "depth")
    again = FlorenceDepthEstimator.from_preset(str(tmp_path / "depth"))
    assert again.get_config() == model.get_config()
    np.testing.assert_allclose(np.asarray(again(images)), expected, rtol=1e-6)
    model.save(tmp_path / "m.keras")
    revived = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(revived, FlorenceDepthEstimator)
    np.testing.assert_allclose(np.asarray(revived(images)), expected, rtol=1e-6)


def test_bad_arguments():
    clip = tiny_clip()
    with pytest.raises(ValueError, match="silog_lambda"):
        FlorenceDepthEstimator(clip.backbone, clip.preprocessor, silog_lambda=2.0)
    with pytest.raises(ValueError, match="image_size"):
        FlorenceDepthEstimator(clip.backbone, clip.preprocessor, image_size=0)

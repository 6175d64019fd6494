"""FlorenceVideoClassifier: inflated from an image preset, losses against NumPy, views averaged, preset round trip."""

import numpy as np
import pytest

from florence_keras.models.florence_video_classifier import FlorenceVideoClassifier
from tests.model_fixtures import save_tiny_preset

CLASSES = ["moving_left", "moving_right", "moving_up"]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    preset = save_tiny_preset(tmp_path_factory.mktemp("tiny") / "preset", image_size=32)
    return FlorenceVideoClassifier.from_image_preset(preset, class_names=CLASSES, num_frames=4, window=2,
                                                     label_smoothing=0.2)


def _clips(batch, frames=4, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (batch, frames, size, size, 3)).astype("uint8")


def test_static_clip_embeds_like_the_image(task, tmp_path):
    from florence_keras.models.florence_clip import FlorenceCLIP

    clip = FlorenceCLIP.from_preset(save_tiny_preset(tmp_path / "p", image_size=32))
    images = _clips(2)[:, 0]
    still = np.repeat(images[:, None], 4, axis=1)
    np.testing.assert_allclose(task.encode_videos(still), np.asarray(clip.encode_images(images)), atol=1e-5)


def test_classification_loss_is_smoothed_cross_entropy(task):
    clips, labels = _clips(3, seed=1), np.array([0, 2, 1])
    logits = np.asarray(task(task.video_inputs(clips)), np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets = np.full((3, 3), 0.2 / 3) + 0.8 * np.eye(3)[labels]
    expected = -(targets * log_probs).sum(-1).mean()
    loss = float(task.replica_loss({"videos": clips}, labels, training=False))
    assert loss == pytest.approx(expected, rel=1e-5)


def test_views_are_averaged_and_other_frame_counts_run(task):
    clips = _clips(2, seed=2)
    views = np.stack([clips, clips[:, ::-1]], axis=1)  # (B, 2 views, T, H, W, 3)
    expected = (task.predict(clips) + task.predict(clips[:, ::-1])) / 2
    np.testing.assert_allclose(task.predict(views), expected, atol=1e-6)
    assert task.predict(_clips(1, frames=7, size=40)).shape == (1, 3)  # resized frames, 7 frames


def test_unicl_objective_loss_is_finite_and_batches_are_checked(task, tmp_path):
    import tensorflow as tf

    from florence_keras.data.labels import text_label

    contrast = FlorenceVideoClassifier(task.backbone, task.preprocessor, class_names=CLASSES, objective="unicl")
    captions = ["a red circle moving left", "a blue star moving up"]
    batch = {"videos": _clips(2), "token_ids": task.preprocessor.tokenize(tf.constant(captions))}
    loss = float(contrast.replica_loss(batch, text_label(captions), training=False))
    assert np.isfinite(loss) and loss > 0
    spec = {"videos": tf.TensorSpec((None, 4, 32, 32, 3), tf.uint8), "labels": tf.TensorSpec((None,), tf.int64)}
    with pytest.raises(ValueError, match="token_ids"):
        contrast.check_training_batch(spec)
    task.check_training_batch(spec)


def test_preset_round_trip(task, tmp_path):
    task.save_to_preset(str(tmp_path / "video"))
    loaded = FlorenceVideoClassifier.from_preset(str(tmp_path / "video"))
    assert loaded.class_names == CLASSES and loaded.num_frames == 4 and loaded.image_size == 32
    clips = _clips(2, seed=3)
    np.testing.assert_allclose(loaded.predict(clips), task.predict(clips), atol=1e-6)


def _moving_clip(step_x, frames=4, size=32, seed=4):
    """A random texture sliding `step_x` pixels per frame (wrapping), as uint8 clips (1, T, S, S, 3)."""
    texture = np.random.default_rng(seed).integers(0, 256, (size, size, 3)).astype("uint8")
    return np.stack([np.roll(texture, step_x * t, axis=1) for t in range(frames)])[None]


def test_the_head_reads_the_direction_of_motion(task):
    # The stem's tokens are 4 px apart here; 4 px per frame (8 px per stem step) is 2 tokens to the right.
    assert task.motion_radius == 2 and task.head.kernel.shape[0] == task.backbone.image_encoder.output_dim + 28
    right = task.video_inputs(_moving_clip(4))
    left = task.video_inputs(_moving_clip(4)[:, ::-1])
    encoder = task.backbone.image_encoder
    pooled_right, pooled_left = (np.asarray(encoder(v)["pooled_output"]) for v in (right, left))
    # The motion features see opposite horizontal displacements (dy, dx first).
    motion_right = np.asarray(task._head_features(pooled_right, right))[0, -28:]
    motion_left = np.asarray(task._head_features(pooled_left, left))[0, -28:]
    assert motion_right[1] > 0.5 and motion_left[1] < -0.5
    assert abs(float(task(right)[0, 0] - task(left)[0, 0])) > 0  # so the logits can differ


def test_motion_features_can_be_turned_off(task):
    plain = FlorenceVideoClassifier(task.backbone, task.preprocessor, class_names=CLASSES, motion_radius=0)
    assert plain.motion is None and plain.head.kernel.shape[0] == task.backbone.image_encoder.output_dim
    assert plain.get_config()["motion_radius"] == 0 and plain.predict(_clips(1)).shape == (1, 3)
    with pytest.raises(ValueError, match="motion_radius"):
        FlorenceVideoClassifier(task.backbone, class_names=CLASSES, motion_radius=-1)


def test_bad_arguments(task):
    with pytest.raises(ValueError, match="class_names"):
        FlorenceVideoClassifier(task.backbone, class_names=["one"])
    with pytest.raises(ValueError, match="objective"):
        FlorenceVideoClassifier(task.backbone, class_names=CLASSES, objective="ctc")

"""fit_dense_label_decoder: learns a per-pixel rule over a frozen encoder, touches nothing else, refuses bad input;
save_fitted_decoder / read_fitted_decoder: the result comes back only for the settings it was fitted with."""

import keras
import numpy as np
import pytest

from florence_keras.models.florence_vqa import FlorenceVQA
from florence_keras.training.dense_label_fitting import fit_dense_label_decoder
from florence_keras.training.dense_label_fitting import read_fitted_decoder
from florence_keras.training.dense_label_fitting import save_fitted_decoder
from tests.model_fixtures import tiny_clip


def _task(classes=3):
    keras.utils.set_random_seed(0)
    clip = tiny_clip()
    return FlorenceVQA(clip.backbone, clip.preprocessor, answer_vocabulary=["yes", "no"], question_length=8,
                       fusion_dim=16, fusion_layers=1, fusion_heads=2, dense_label_classes=classes,
                       dense_label_channels=12)


def _squares(count, seed=0):
    """Dark images with one bright and one grey square: class 1 on the bright one, 2 on the grey one, else 0."""
    rng = np.random.default_rng(seed)
    images = np.full((count, 32, 32, 3), 20, np.uint8)
    labels = np.zeros((count, 32, 32), np.int32)
    for index in range(count):
        for value, label in ((250, 1), (130, 2)):
            top, left = rng.integers(0, 20, size=2)
            images[index, top:top + 12, left:left + 12] = value
            labels[index, top:top + 12, left:left + 12] = label
    return images, labels


def test_fits_the_decoder_alone_then_freezes_it():
    task = _task()
    images, labels = _squares(48)
    others = {id(w): np.array(w) for w in task.weights if id(w) not in {id(v) for v in task.dense_label_decoder.weights}}
    before = np.asarray(task.dense_label_logits(task.image_inputs(images[:8])))
    result = fit_dense_label_decoder(task, images, labels, steps=200, batch_size=16, learning_rate=5e-3,
                                     warmup_steps=500, class_weights=(0.5, 1.0, 1.0), verbose=0)
    assert result["steps"] == 200 and np.isfinite(result["loss"])
    held_images, held_labels = _squares(16, seed=1)
    predicted = np.asarray(task.dense_label_logits(task.image_inputs(held_images))).argmax(-1)
    objects = held_labels > 0
    accuracy = float((predicted == held_labels)[objects].mean())
    chance = max(float((held_labels[objects] == c).mean()) for c in (1, 2))
    assert accuracy > 0.85 > chance + 0.25, (accuracy, chance)  # held-out squares: the rule, not the images
    assert result["pixel_accuracy"] > 0.85
    assert not np.allclose(np.asarray(task.dense_label_logits(task.image_inputs(images[:8]))), before)
    assert not task.dense_label_decoder.trainable
    assert not {id(w) for w in task.dense_label_decoder.weights} & {id(w) for w in task.trainable_weights}
    for weight in task.weights:  # the encoders, fusion and head are untouched
        if id(weight) in others:
            np.testing.assert_array_equal(np.array(weight), others[id(weight)])


def test_same_seed_same_decoder():
    images, labels = _squares(20)
    fitted = []
    for _ in range(2):
        task = _task()
        fit_dense_label_decoder(task, images, labels, steps=6, batch_size=8, seed=3, verbose=0)
        fitted.append(task.dense_label_decoder.get_weights())
    for first, second in zip(*fitted):
        np.testing.assert_array_equal(first, second)


def test_bad_input_is_refused():
    task = _task()
    images, labels = _squares(4)
    with pytest.raises(ValueError, match="label_maps"):
        fit_dense_label_decoder(task, images, labels[:, :16], steps=2, verbose=0)
    with pytest.raises(ValueError, match="classes in"):
        fit_dense_label_decoder(task, images, labels + 2, steps=2, verbose=0)
    with pytest.raises(ValueError, match="empty"):
        fit_dense_label_decoder(task, images[:0], labels[:0], steps=2, verbose=0)
    with pytest.raises(ValueError, match="steps"):
        fit_dense_label_decoder(task, images, labels, steps=0, verbose=0)
    with pytest.raises(ValueError, match="class_weights"):
        fit_dense_label_decoder(task, images, labels, steps=2, class_weights=(1.0, 0.0, 1.0), verbose=0)
    with pytest.raises(ValueError, match="class_weights"):
        fit_dense_label_decoder(task, images, labels, steps=2, class_weights=(1.0, 1.0), verbose=0)


def test_a_saved_decoder_comes_back_only_for_its_settings(tmp_path):
    task = _task()
    images, labels = _squares(8)
    fit_dense_label_decoder(task, images, labels, steps=2, batch_size=4, verbose=0)
    settings = {"preset": "p", "steps": 2, "class_weights": (0.1, 1.0, 1.0)}
    path = str(tmp_path / "m" / "decoder.npz")
    weights, why_not = read_fitted_decoder(path, settings)
    assert weights is None and why_not == "no fitted decoder yet"
    save_fitted_decoder(path, task.dense_label_decoder, settings)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["decoder.npz"]  # (the partial file renamed)

    weights, why_not = read_fitted_decoder(path, dict(settings, class_weights=[0.1, 1.0, 1.0]))  # (JSON: alike)
    assert why_not is None
    fresh = _task()
    fresh.dense_label_decoder.set_weights(weights)
    for loaded, fitted in zip(fresh.dense_label_decoder.get_weights(), task.dense_label_decoder.get_weights()):
        np.testing.assert_array_equal(loaded, fitted)

    weights, why_not = read_fitted_decoder(path, dict(settings, steps=3, seed=1))
    assert weights is None
    assert why_not == "fitted with other settings: seed None -> 1, steps 2 -> 3"
    with open(path, "wb") as f:  # a file written before the settings were recorded
        np.savez(f, *task.dense_label_decoder.get_weights())
    assert read_fitted_decoder(path, settings) == (None, "the file does not record the settings it was fitted with")
    with open(path, "wb") as f:  # a damaged file: a reason to fit again, not a crash
        f.write(b"not an npz")
    weights, why_not = read_fitted_decoder(path, settings)
    assert weights is None and why_not.startswith("the file cannot be read")

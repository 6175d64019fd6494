"""The pretraining input pipeline's text and colour augmentations: prompts read as English, captions stay true."""

import numpy as np
import pytest
import tensorflow as tf

from florence_keras.data import labels as labels_lib
from florence_keras.models import preset_registry
from florence_keras.training import DatasetRequest
from florence_keras.training import TrainingStage
from florence_keras.training.image_text_input import augment_short_texts
from florence_keras.training.image_text_input import make_image_text_input_fn


def test_short_texts_get_one_article_that_agrees():
    texts = tf.constant(["a red circle", "an orange star", "circle", "two objects: a red circle and a star"])
    templates = ("a photo of a {}.",)
    out = augment_short_texts(texts, tf.constant([3, 4]), templates).numpy().tolist()
    assert out == [b"a photo of a red circle.", b"a photo of an orange star.", b"a photo of a circle.",
                   b"two objects: a red circle and a star"]


def _write_csv(tmp_path, rows):
    tf.io.write_file(str(tmp_path / "red.png"), tf.io.encode_png(
        tf.broadcast_to(tf.constant([200, 30, 40], tf.uint8), [16, 16, 3])))
    with open(tmp_path / "index.csv", "w", encoding="utf-8") as f:
        f.write("filepath,caption\n")
        f.writelines(f"red.png,{caption}\n" for caption in rows)
    return str(tmp_path / "index.csv")


def test_greyscale_images_lose_their_colour_words_and_get_that_texts_label(tmp_path):
    captions = ["a red square", "a square", "a photo of an orange square on the left"] * 8
    preprocessor = preset_registry.build_architecture_preprocessor("florence_mini", 16)
    make_dataset = make_image_text_input_fn(_write_csv(tmp_path, captions), "csv", preprocessor,
                                            greyscale_probability=0.5)
    request = DatasetRequest(TrainingStage("stage1", 0, 16, False), 24, 24, 1, 0, seed=5, deterministic=True)
    batch = next(iter(make_dataset(request)))
    # Normalised pixels: a greyscale image has equal raw channels, so its normalised channels differ only by the
    # per-channel mean/std; compare the de-normalised channels instead.
    converter = preprocessor.image_converter
    raw = batch["images"].numpy() * np.array(converter.std) + np.array(converter.mean)
    grey = np.ptp(raw, axis=-1).max(axis=(1, 2)) < 0.01
    assert 3 <= grey.sum() <= 21  # about half
    labels = batch["labels"].numpy()  # flips may have swapped left and right
    colour_free = {int(labels_lib.text_label(t).numpy()) for t in
                   ("a square", "a photo of a square on the left", "a photo of a square on the right")}
    coloured = {int(labels_lib.text_label(t).numpy()) for t in
                ("a red square", "a photo of an orange square on the left", "a photo of an orange square on the right")}
    for is_grey, label in zip(grey, labels):
        assert int(label) in (colour_free if is_grey else colour_free | coloured)
    assert any(int(label) in coloured for label in labels[~grey])
    with pytest.raises(ValueError, match="greyscale_probability"):
        make_image_text_input_fn("x.csv", "csv", preprocessor, greyscale_probability=2.0)

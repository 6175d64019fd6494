"""Dense label maps follow their images through the loader's crop, resize and flip, as class fractions."""

import csv

import cv2
import numpy as np
import pytest
import tensorflow as tf

from florence_keras.data.image_text_dataset import load_image_text_dataset


def _label_path(sources):
    return tf.strings.regex_replace(sources, r"img_(\d+)\.png$", r"lab_\1.png")


def _write(tmp_path, count=12, height=48, width=64, classes=(3, 4)):
    """Images whose pixels spell their label maps: red = 100 × the first kind's class, green = 60 × the second's."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        codes = np.stack([rng.integers(0, c, (height, width)) for c in classes], -1).astype(np.uint8)
        image = np.stack([codes[..., 0] * 100, codes[..., 1] * 60, np.zeros_like(codes[..., 0])], -1)
        cv2.imwrite(str(tmp_path / f"img_{i}.png"), image[:, :, ::-1].astype(np.uint8))
        cv2.imwrite(str(tmp_path / f"lab_{i}.png"), np.concatenate([codes, np.zeros_like(codes[..., :1])], -1)[:, :, ::-1])
        rows.append((f"img_{i}.png", "an object on the left" if i % 2 else "a red circle"))
    with open(tmp_path / "index.csv", "w", newline="") as f:
        csv.writer(f).writerows([("filepath", "caption")] + rows)
    return str(tmp_path / "index.csv")


@pytest.mark.parametrize("training", [True, False])
def test_label_fractions_follow_the_image(tmp_path, training):
    classes = (3, 4)
    index = _write(tmp_path, classes=classes)
    dataset = load_image_text_dataset(index, "csv", image_size=32, training=training, seed=3,
                                      crop_scale=(0.3, 1.0), crop_ratio=(0.7, 1.4), dense_labels=_label_path,
                                      dense_label_classes=(3, 4, 1))
    flipped = 0
    for example in dataset:
        fractions = example["dense_labels"].numpy()
        assert fractions.shape == (32, 32, 3 + 4 + 1)
        np.testing.assert_allclose(fractions[..., :3].sum(-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(fractions[..., 3:7].sum(-1), 1.0, atol=1e-5)
        image = example["images"].numpy().astype(np.float64)
        # The image's pixels are linear in the classes, so resizing either gives the same (up to uint8 rounding).
        np.testing.assert_allclose(image[..., 0], 100 * fractions[..., :3] @ np.arange(3), atol=0.51)
        np.testing.assert_allclose(image[..., 1], 60 * fractions[..., 3:7] @ np.arange(4), atol=0.51)
        flipped += b"right" in example["texts"].numpy()
    if training:
        assert flipped > 0  # some flips happened, and the maps followed them


def test_a_map_of_another_size_is_refused_with_its_name(tmp_path):
    index = _write(tmp_path, count=1)
    cv2.imwrite(str(tmp_path / "lab_0.png"), np.zeros((10, 10, 3), np.uint8))
    dataset = load_image_text_dataset(index, "csv", image_size=32, seed=0, dense_labels=_label_path,
                                      dense_label_classes=(3, 4, 1))
    with pytest.raises(tf.errors.InvalidArgumentError, match="lab_0.png is not the size of its image"):
        next(iter(dataset))


def test_bad_arguments():
    with pytest.raises(ValueError, match="dense_label_classes"):
        load_image_text_dataset("x.csv", "csv", image_size=32, dense_labels=_label_path, dense_label_classes=())
    with pytest.raises(ValueError, match="callable"):
        load_image_text_dataset("x.csv", "csv", image_size=32, dense_labels="labels/", dense_label_classes=(3,))
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        load_image_text_dataset("x.csv", "csv", image_size=32, dense_labels=_label_path, dense_label_classes=(3, 4))
    with pytest.raises(ValueError, match="image_size"):
        load_image_text_dataset("x.csv", "csv", dense_labels=_label_path, dense_label_classes=(3,))

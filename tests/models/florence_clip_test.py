"""FlorenceCLIP: encoding raw inputs, presets and .keras round trips, bad input."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from florence_keras.models import FlorenceCLIP

TEXTS = ["a red circle", "", "x " * 300, "Ünïcödé CAFÉ 2024"]


def _images():
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (40, 50, 3), dtype=np.uint8),
        rng.integers(0, 256, (20, 20), dtype=np.uint8),  # grayscale without channel axis
        rng.integers(0, 256, (33, 31, 1), dtype=np.uint8),
        rng.integers(0, 256, (33, 31, 4), dtype=np.uint8),  # RGBA
    ]


def test_backbone_contract(tiny_clip):
    out = tiny_clip.backbone({"images": tf.zeros((2, 32, 32, 3)),
                              "token_ids": tiny_clip.preprocessor.tokenize(["a", "b"])})
    assert sorted(out) == ["image_embeddings", "logit_scale", "text_embeddings"]
    assert out["logit_scale"].shape == ()
    np.testing.assert_allclose(float(out["logit_scale"]), 1 / 0.07, rtol=1e-5)


def test_encode_images_any_size_and_channels(tiny_clip):
    images = _images()
    emb = tiny_clip.encode_images(images).numpy()
    assert emb.shape == (4, 16)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # grayscale == the same image repeated on 3 channels; RGBA == its RGB part
    gray3 = np.repeat(images[2], 3, axis=-1)
    np.testing.assert_allclose(tiny_clip.encode_images([gray3]).numpy()[0], emb[2], atol=1e-6)
    np.testing.assert_allclose(tiny_clip.encode_images([images[3][..., :3]]).numpy()[0], emb[3], atol=1e-6)
    # a batch array and a float array in [0, 255] agree with the list path
    batch = np.stack([images[0]] * 2)
    np.testing.assert_allclose(tiny_clip.encode_images(batch).numpy()[1], emb[0], atol=1e-6)
    np.testing.assert_allclose(
        tiny_clip.encode_images(batch.astype("float32")).numpy()[0], emb[0], atol=1e-6)


def test_encode_images_matches_backbone_on_converted_pixels(tiny_clip):
    image = _images()[0]
    pixels = tiny_clip.preprocessor.image_converter(image[None])
    expected = tiny_clip.backbone.embed_images(pixels).numpy()
    np.testing.assert_allclose(tiny_clip.encode_images(image[None]).numpy(), expected, atol=1e-6)
    # normalisation: (x / 255 - mean) / std on a constant image
    flat = np.full((1, 32, 32, 3), 255, np.uint8)
    out = tiny_clip.preprocessor.image_converter(flat).numpy()[0, 0, 0]
    np.testing.assert_allclose(out, (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]), rtol=1e-5)


def test_encode_texts_strings_and_ids_agree(tiny_clip):
    ids = tiny_clip.preprocessor.tokenize(TEXTS)
    assert ids.shape == (4, 77) and ids.dtype == tf.int32
    np.testing.assert_allclose(tiny_clip.encode_texts(TEXTS), tiny_clip.encode_texts(ids), atol=1e-6)
    long_ids = ids.numpy()[2]
    assert long_ids[0] == 49406 and long_ids[-1] == 49407  # truncated, end token kept
    assert list(ids.numpy()[1][:3]) == [49406, 49407, 49407]  # empty string


def test_non_utf8_bytes_are_replaced_not_crashing(tiny_clip):
    ids = tiny_clip.preprocessor.tokenize(tf.constant([b"caf\xe9 \xff\xfe ok"]))
    assert ids.shape == (1, 77)
    replacement = tiny_clip.preprocessor.tokenize(["caf\ufffd \ufffd\ufffd ok"])
    np.testing.assert_array_equal(ids, replacement)


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((2, 78), "int32"), "shape"),  # longer than the context (any length <= 77 is fine)
        (np.zeros((2, 77), "float32"), "int token ids"),
    ],
)
def test_encode_texts_bad_input(tiny_clip, bad, match):
    with pytest.raises(ValueError, match=match):
        tiny_clip.encode_texts(bad)


def test_encode_images_bad_input(tiny_clip):
    with pytest.raises(ValueError, match="channels"):
        tiny_clip.encode_images(np.zeros((1, 8, 8, 5), "uint8"))
    with pytest.raises(ValueError, match="Images must be"):
        tiny_clip.encode_images(np.zeros((1, 1, 8, 8, 3), "uint8"))
    with pytest.raises(ValueError, match="empty"):
        tiny_clip.encode_images([])


def test_preset_round_trip_is_bit_exact(tiny_clip, tmp_path):
    tiny_clip.save_to_preset(str(tmp_path))
    revived = FlorenceCLIP.from_preset(str(tmp_path))
    for a, b in zip(tiny_clip.backbone.weights, revived.backbone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(tiny_clip.encode_texts(TEXTS), revived.encode_texts(TEXTS))
    np.testing.assert_array_equal(tiny_clip.encode_images(_images()), revived.encode_images(_images()))
    assert revived.backbone.get_config() == tiny_clip.backbone.get_config()


def test_keras_file_round_trip(tiny_clip, tmp_path):
    path = str(tmp_path / "clip.keras")
    tiny_clip.save(path)
    revived = keras.saving.load_model(path)  # safe_mode=True (the default)
    assert isinstance(revived, FlorenceCLIP)
    np.testing.assert_array_equal(tiny_clip.encode_texts(TEXTS), revived.encode_texts(TEXTS))


def test_damaged_preset_directories(tiny_clip, tmp_path):
    tiny_clip.save_to_preset(str(tmp_path / "ok"))
    import shutil

    missing = tmp_path / "missing"
    shutil.copytree(tmp_path / "ok", missing)
    os.remove(missing / "model.weights.h5")
    with pytest.raises(ValueError, match="model.weights.h5"):
        FlorenceCLIP.from_preset(str(missing))
    broken_json = tmp_path / "json"
    shutil.copytree(tmp_path / "ok", broken_json)
    (broken_json / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json"):
        FlorenceCLIP.from_preset(str(broken_json))
    broken_h5 = tmp_path / "h5"
    shutil.copytree(tmp_path / "ok", broken_h5)
    (broken_h5 / "model.weights.h5").write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match="corrupted"):
        FlorenceCLIP.from_preset(str(broken_h5))
    swapped = tmp_path / "swapped"
    shutil.copytree(tmp_path / "ok", swapped)
    task = json.loads((swapped / "task.json").read_text())
    task["config"]["backbone"]["config"]["projection_dim"] = 24  # config from another model
    (swapped / "task.json").write_text(json.dumps(task))
    with pytest.raises(ValueError, match=r"task\.json': changed since the preset was saved"):  # the manifest
        FlorenceCLIP.from_preset(str(swapped))
    os.remove(swapped / "manifest.json")  # without one, the weights no longer fit the model
    with pytest.raises(ValueError, match=r"model\.weights\.h5': does not hold this model's weights"):
        FlorenceCLIP.from_preset(str(swapped))


def test_architecture_preset_builds_random_model():
    clip = FlorenceCLIP.from_preset("florence_tiny", image_size=64)
    assert clip.backbone.image_encoder.embed_dim == 96
    assert clip.encode_texts(["a"]).shape == (1, 512)

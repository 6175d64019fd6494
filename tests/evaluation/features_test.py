import os

import numpy as np
import pytest
import tensorflow as tf

from florence_keras.evaluation import features


def mean_color_encoder(images):
    """A stand-in image encoder: the mean RGB of each image, as a tensor (like FlorenceCLIP.encode_images)."""
    return tf.reduce_mean(tf.cast(images, tf.float32), axis=[1, 2])


def image_text_dataset(num=7, batch_size=3):
    images = np.arange(num * 4 * 4 * 3, dtype=np.int64).reshape(num, 4, 4, 3) % 251
    data = {
        "images": images.astype(np.uint8),
        "texts": [f"caption {i}" for i in range(num)],
        "labels": np.arange(num, dtype=np.int64) * 1_000_000_007,
    }
    return tf.data.Dataset.from_tensor_slices(data).batch(batch_size), data


def test_encodes_a_dict_dataset_in_order_and_keeps_fields():
    dataset, data = image_text_dataset()
    out = features.encode_image_dataset(mean_color_encoder, dataset, keep_keys=("labels", "texts"), verbose=True)
    expected = data["images"].astype(np.float32).mean(axis=(1, 2))
    np.testing.assert_allclose(out["features"], expected, rtol=1e-6)
    assert out["features"].dtype == np.float32
    np.testing.assert_array_equal(out["labels"], data["labels"])
    assert out["texts"].tolist() == data["texts"] and out["texts"].dtype.kind == "U"


def test_tuple_and_bare_batches():
    images = np.random.default_rng(0).integers(0, 255, size=(5, 2, 2, 3)).astype(np.uint8)
    labels = np.arange(5)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
    out = features.encode_image_dataset(mean_color_encoder, dataset, verbose=False)
    np.testing.assert_array_equal(out["labels"], labels)
    bare = [images[:3], images[3:]]
    out = features.encode_image_dataset(mean_color_encoder, bare, keep_keys=(), verbose=False)
    assert set(out) == {"features"} and out["features"].shape == (5, 3)


def test_errors():
    dataset, _ = image_text_dataset()
    with pytest.raises(ValueError, match="no field 'missing'"):
        features.encode_image_dataset(mean_color_encoder, dataset, keep_keys=("missing",), verbose=False)
    with pytest.raises(ValueError, match="\\[batch, dim\\]"):
        features.encode_image_dataset(lambda x: tf.zeros([1, 2]), dataset, verbose=False)
    with pytest.raises(ValueError, match="no batches"):
        features.encode_image_dataset(mean_color_encoder, dataset.take(0), verbose=False)
    with pytest.raises(ValueError, match="image key"):
        features.encode_image_dataset(mean_color_encoder, [{"pixels": np.zeros((1, 2, 2, 3))}], verbose=False)
    with pytest.raises(ValueError, match="callable"):
        features.encode_image_dataset(None, dataset)


def test_encode_texts_in_batches():
    calls = []

    def encoder(texts):
        calls.append(list(texts))
        return tf.constant([[float(len(t)), 1.0] for t in texts])

    out = features.encode_texts_in_batches(encoder, ["a", "bb", "ccc"], batch_size=2)
    np.testing.assert_array_equal(out, [[1, 1], [2, 1], [3, 1]])
    assert calls == [["a", "bb"], ["ccc"]]
    with pytest.raises(ValueError, match="strings"):
        features.encode_texts_in_batches(encoder, ["a", 3])


def test_cache_computes_once_and_reloads_without_pickle(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"features": np.ones((3, 2), np.float32), "texts": np.array(["a", "b", "c"])}

    key = features.feature_cache_key(preset="florence_tiny", data=["x.csv"], split="train")
    first = features.load_or_compute_features(tmp_path, key, compute)
    second = features.load_or_compute_features(tmp_path, key, compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["features"], second["features"])
    assert second["texts"].tolist() == ["a", "b", "c"]
    assert sorted(os.listdir(tmp_path)) == [key + ".npz"]  # no temporary files left behind
    assert features.load_or_compute_features(None, key, compute)["features"].shape == (3, 2)
    assert len(calls) == 2


def test_corrupt_cache_is_recomputed(tmp_path):
    key = "abc"
    (tmp_path / "abc.npz").write_bytes(b"not a zip file")
    out = features.load_or_compute_features(tmp_path, key, lambda: {"features": np.zeros(2)})
    np.testing.assert_array_equal(out["features"], [0, 0])
    with np.load(tmp_path / "abc.npz", allow_pickle=False) as stored:
        assert stored.files == ["features"]


def test_object_arrays_and_bad_keys_are_refused(tmp_path):
    with pytest.raises(ValueError, match="pickle"):
        features.load_or_compute_features(tmp_path, "k", lambda: {"x": np.array([{}, 1], dtype=object)})
    with pytest.raises(ValueError, match="file stem"):
        features.load_or_compute_features(tmp_path, "a/b", lambda: {"x": np.zeros(1)})


def test_cache_key_and_fingerprint(tmp_path):
    a = features.feature_cache_key(preset="p", data=["d"], split="train")
    assert a == features.feature_cache_key(split="train", data=["d"], preset="p")
    assert a != features.feature_cache_key(preset="p", data=["d"], split="test")
    with pytest.raises(ValueError, match="JSON"):
        features.feature_cache_key(preset=object())
    folder = tmp_path / "data"
    (folder / "cls").mkdir(parents=True)
    (folder / "cls" / "1.jpg").write_bytes(b"abc")
    before = features.path_fingerprint(folder)
    assert before == features.path_fingerprint(folder)
    (folder / "cls" / "2.jpg").write_bytes(b"d")
    assert features.path_fingerprint(folder) != before
    with pytest.raises(ValueError, match="does not exist"):
        features.path_fingerprint(tmp_path / "missing")

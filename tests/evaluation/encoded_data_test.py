import importlib.util
import os

import numpy as np
import pytest
from PIL import Image

from florence_keras.evaluation import encoded_data
from florence_keras.evaluation import features as features_lib
from florence_keras.models.florence_clip import FlorenceCLIP
from tests.model_fixtures import save_tiny_preset

_spec = importlib.util.spec_from_file_location(
    "eval_recipe_data",
    os.path.join(os.path.dirname(os.path.dirname(__file__)), "recipes", "eval_recipe_data.py"),
)
eval_recipe_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_recipe_data)


@pytest.fixture(scope="module")
def preset_and_clip(tmp_path_factory):
    preset = save_tiny_preset(tmp_path_factory.mktemp("preset") / "tiny")
    return preset, FlorenceCLIP.from_preset(preset)


def reference_features(clip, paths):
    """Encodes files one by one: load with Pillow, the evaluation crop, then `clip.encode_images`."""
    from florence_keras.data import image_transforms

    size = encoded_data.model_image_size(clip)
    crops = [image_transforms.resize_center_crop(np.asarray(Image.open(p).convert("RGB")), size) for p in paths]
    return np.asarray(clip.encode_images(np.stack([np.asarray(c) for c in crops])))


def test_labelled_images_features_skips_and_cache(preset_and_clip, tmp_path, monkeypatch):
    preset, clip = preset_and_clip
    root = eval_recipe_data.write_image_folder(tmp_path / "data", per_class=2, bad_file=True)
    cache = tmp_path / "cache"
    data = encoded_data.encode_labelled_images(clip, preset, root, "imagefolder", batch_size=4, cache_dir=cache,
                                               verbose=False)
    assert int(data["num_skipped"]) == 1
    assert data["class_names"].tolist() == ["blue_square"] * 2 + ["green_square"] * 2 + ["red_square"] * 2
    assert [os.path.basename(s) for s in data["sources"]] == ["0.png", "1.png"] * 3
    np.testing.assert_allclose(data["features"], reference_features(clip, data["sources"]), atol=1e-5)
    assert len(os.listdir(cache)) == 1

    def fail(*args, **kwargs):
        raise AssertionError("re-encoded although the features are cached")

    monkeypatch.setattr(features_lib, "encode_image_dataset", fail)
    again = encoded_data.encode_labelled_images(clip, preset, root, "imagefolder", batch_size=4, cache_dir=cache,
                                                verbose=False)
    np.testing.assert_array_equal(again["features"], data["features"])
    # A different split name is a different cache entry (and would encode).
    with pytest.raises(AssertionError, match="re-encoded"):
        encoded_data.encode_labelled_images(clip, preset, root, "imagefolder", split="other", cache_dir=cache,
                                            verbose=False)


def test_captioned_images_are_encoded_once_per_image(preset_and_clip, tmp_path):
    preset, clip = preset_and_clip
    path, num_images, num_captions = eval_recipe_data.write_coco_captions(tmp_path / "coco", per_class=2)
    data = encoded_data.encode_captioned_images(clip, preset, path, "coco", batch_size=3, verbose=False)
    assert data["image_features"].shape[0] == num_images == len(set(data["image_sources"]))
    assert len(data["captions"]) == num_captions
    assert data["thumbnails"].shape == (num_images, encoded_data.THUMBNAIL_SIZE, encoded_data.THUMBNAIL_SIZE, 3)
    for caption, image in zip(data["captions"], data["text_to_image"]):
        # "a red square, picture 1, caption 0" belongs to images/red_square_1.png
        name, picture = caption[2:].split(", ")[:2]
        assert os.path.basename(data["image_sources"][image]) == f"{name.replace(' ', '_')}_{picture[-1]}.png"
    np.testing.assert_allclose(data["image_features"], reference_features(clip, data["image_sources"]), atol=1e-5)


def test_wrong_kind_of_data_is_a_clear_error(preset_and_clip, tmp_path):
    preset, clip = preset_and_clip
    path, _, _ = eval_recipe_data.write_coco_captions(tmp_path / "coco", per_class=1)
    with pytest.raises(ValueError, match="needs image-label data"):
        encoded_data.encode_labelled_images(clip, preset, path, "coco", verbose=False)
    root = eval_recipe_data.write_image_folder(tmp_path / "folder", per_class=1)
    with pytest.raises(ValueError, match="retrieval needs image-text data"):
        encoded_data.encode_captioned_images(clip, preset, root, "imagefolder", verbose=False)


def test_texts_cache_and_preset_ids(preset_and_clip, tmp_path):
    preset, clip = preset_and_clip
    texts = ["a red square", "a blue square", "a red square"]
    first = encoded_data.encode_texts_cached(clip, preset, texts, batch_size=2, cache_dir=tmp_path, verbose=False)
    np.testing.assert_allclose(first, np.asarray(clip.encode_texts(texts)), atol=1e-6)
    assert len(os.listdir(tmp_path)) == 1
    encoded_data.encode_texts_cached(clip, preset, texts, cache_dir=tmp_path, verbose=False)
    assert len(os.listdir(tmp_path)) == 1
    assert encoded_data.preset_cache_id("florence_tiny") is None  # random init: never cached
    assert encoded_data.preset_cache_id(preset).startswith(os.path.abspath(preset))

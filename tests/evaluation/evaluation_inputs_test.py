"""`load_and_encode`: the evaluation recipes' one preamble (load the preset, resolve the data, encode)."""

import importlib.util
import os

import numpy as np
import pytest

from florence_keras.evaluation import encoded_data
from florence_keras.evaluation.evaluation_inputs import load_and_encode
from florence_keras.models.florence_clip import FlorenceCLIP

_spec = importlib.util.spec_from_file_location(
    "eval_recipe_data",
    os.path.join(os.path.dirname(os.path.dirname(__file__)), "recipes", "eval_recipe_data.py"),
)
eval_recipe_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_recipe_data)

SMALL = {"num_train": 6, "num_heldout": 8, "image_size": 32}


def test_sources_equal_encoding_each_by_hand(tiny_preset_dir, tmp_path):
    folder = eval_recipe_data.write_image_folder(tmp_path / "folder", per_class=2)
    builtin_dir = tmp_path / "builtin"
    clip, encoded = load_and_encode(
        tiny_preset_dir, {"test": ([folder], "heldout"), "train": (["builtin"], "train")}, "imagefolder", "labels",
        builtin_dir=builtin_dir, builtin_settings=SMALL, batch_size=4, cache_dir=tmp_path / "cache", verbose=False,
    )
    assert isinstance(clip, FlorenceCLIP) and list(encoded) == ["test", "train"]
    # The same numbers as loading the preset and encoding each source directly.
    reference = FlorenceCLIP.from_preset(tiny_preset_dir)
    by_hand = encoded_data.encode_labelled_images(reference, tiny_preset_dir, [folder], "imagefolder",
                                                  verbose=False)
    np.testing.assert_allclose(encoded["test"]["features"], by_hand["features"], atol=1e-6)
    assert encoded["test"]["class_names"].tolist() == by_hand["class_names"].tolist()
    # `builtin` is the built-in training split (ImageFolder form), written under builtin_dir.
    train_folder = os.path.join(builtin_dir, "imagefolder", "train")
    on_disk = {name: len(os.listdir(os.path.join(train_folder, name))) for name in os.listdir(train_folder)}
    names, counts = np.unique(encoded["train"]["class_names"], return_counts=True)
    assert dict(zip(names.tolist(), counts.tolist())) == {k: v for k, v in on_disk.items() if v}
    assert counts.sum() == SMALL["num_train"]
    # Each source is its own cache entry (named by the source's key).
    assert len(os.listdir(tmp_path / "cache")) == 2


def test_captions_kind(tiny_preset_dir, tmp_path):
    path, num_images, num_captions = eval_recipe_data.write_coco_captions(tmp_path / "coco", per_class=1)
    _, encoded = load_and_encode(tiny_preset_dir, {"eval": ([path], None)}, "coco", "captions", verbose=False)
    assert encoded["eval"]["image_features"].shape[0] == num_images
    assert len(encoded["eval"]["captions"]) == num_captions


@pytest.mark.parametrize(
    "preset,sources,kind,builtin_dir,match",
    [
        (None, {"eval": (["x"], None)}, "labels", None, "Give a preset"),
        ("florence_mini", {"eval": (["x"], None)}, "depth", None, "kind='depth'"),
        ("florence_mini", {}, "labels", None, "names no data"),
        ("florence_mini", {"eval": ([], None)}, "labels", None, "has no data path"),
        ("florence_mini", {"eval": (["builtin"], "heldout")}, "labels", None, "builtin_dir"),
    ],
)
def test_bad_arguments_are_clear_errors_before_loading(preset, sources, kind, builtin_dir, match):
    with pytest.raises(ValueError, match=match):
        load_and_encode(preset, sources, "imagefolder", kind, builtin_dir=builtin_dir, verbose=False)

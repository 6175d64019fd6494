"""`--data=builtin`: the evaluation recipes read the built-in splits in the ImageFolder / COCO-captions form."""

import json
import os

import pytest

from florence_keras.evaluation import builtin_data

SMALL = {"num_train": 8, "num_heldout": 6, "image_size": 32}


def test_paths_pass_through_unchanged(tmp_path):
    assert builtin_data.resolve_data(["a", "b"], "csvlabel", "labels", "heldout", tmp_path) == (["a", "b"], "csvlabel")
    assert builtin_data.resolve_data(tmp_path / "a.csv", "csv", "captions", None, None) == ([str(tmp_path / "a.csv")],
                                                                                            "csv")  # one path
    assert not os.listdir(tmp_path)  # nothing written
    assert builtin_data.is_builtin(["builtin"]) and builtin_data.is_builtin("builtin")
    assert not builtin_data.is_builtin(["builtin", "more"]) and not builtin_data.is_builtin(None)


def test_builtin_splits_are_written_once_and_reused(tmp_path):
    paths, data_format = builtin_data.resolve_data(["builtin"], "csvlabel", "labels", "heldout", tmp_path, **SMALL)
    assert data_format == "imagefolder" and len(paths) == 1
    classes = sorted(os.listdir(paths[0]))
    assert sum(len(os.listdir(os.path.join(paths[0], c))) for c in classes) == SMALL["num_heldout"]
    train, _ = builtin_data.resolve_data(["builtin"], "imagefolder", "labels", "train", tmp_path, **SMALL)
    assert sum(len(files) for _, _, files in os.walk(train[0])) == SMALL["num_train"]
    captions, caption_format = builtin_data.resolve_data(["builtin"], "csv", "captions", "heldout", tmp_path, **SMALL)
    assert caption_format == "coco"
    with open(captions[0], encoding="utf-8") as f:
        assert len(json.load(f)["images"]) == SMALL["num_heldout"]
    # Same settings: the files are reused, not rewritten.
    stamp = os.path.getmtime(os.path.join(tmp_path, "florence_builtin_settings.json"))
    builtin_data.resolve_data(["builtin"], "csv", "captions", "heldout", tmp_path, **SMALL)
    assert os.path.getmtime(os.path.join(tmp_path, "florence_builtin_settings.json")) == stamp


def test_bad_requests_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="kind='depth'"):
        builtin_data.resolve_data(["builtin"], "csv", "depth", "heldout", tmp_path)
    with pytest.raises(ValueError, match="split='val'"):
        builtin_data.resolve_data(["builtin"], "csv", "labels", "val", tmp_path)
    with pytest.raises(ValueError, match="num_scenes"):
        builtin_data.resolve_data(["builtin"], "csv", "labels", "heldout", tmp_path, num_scenes=3)

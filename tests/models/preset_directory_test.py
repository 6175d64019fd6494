"""Loading a preset directory: the manifest is verified, bad files are named, and bugs propagate as themselves."""

import json
import logging
import os
import shutil

import h5py
import numpy as np
import pytest

from florence_keras.models import preset_directory
from florence_keras.models import preset_manifest
from florence_keras.models import preset_registry
from florence_keras.models.florence_backbone import FlorenceBackbone
from florence_keras.models.florence_clip import FlorenceCLIP
from florence_keras.models.preset_files import PresetFileError

TEXTS = ["a red circle", "two blue squares"]


@pytest.fixture(scope="module")
def saved(tiny_clip, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("directory_preset") / "preset")
    tiny_clip.save_to_preset(directory, metadata={"florence_training": {"steps": 3, "seed": 0}})
    return directory


@pytest.fixture
def copy(saved, tmp_path):
    directory = str(tmp_path / "preset")
    shutil.copytree(saved, directory)
    return directory


def _flip_one_bit(path, offset=None):
    data = bytearray(open(path, "rb").read())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0x01
    with open(path, "wb") as f:
        f.write(bytes(data))


def _offset_inside_a_weight(path):
    """The file offset of the first byte of the largest dataset (a weight's raw numbers, stored contiguously)."""
    datasets = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: datasets.append(item) if isinstance(item, h5py.Dataset) else None)
        largest = max(datasets, key=lambda d: d.size)
        return largest.id.get_offset()


def _same_weights(a, b):
    return all(np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a.weights, b.weights))


def test_save_writes_metadata_then_a_manifest_that_covers_it(saved):
    metadata = json.load(open(os.path.join(saved, "metadata.json")))
    assert metadata["florence_training"] == {"steps": 3, "seed": 0}
    assert "parameter_count" in metadata  # keras-hub's own entries are kept
    files = preset_manifest.verify_manifest(saved)
    assert {"metadata.json", "model.weights.h5", "task.json", "assets/tokenizer/vocabulary.json"} <= files


def test_one_bit_flipped_in_the_weights_is_an_error_naming_the_file(copy):
    _flip_one_bit(os.path.join(copy, "model.weights.h5"))
    with pytest.raises(PresetFileError, match=r"model\.weights\.h5': changed since the preset was saved"):
        FlorenceCLIP.from_preset(copy)


def test_one_bit_flipped_in_the_shipped_trained_preset_is_an_error(tmp_path):
    shipped = os.path.join(preset_registry.PACKAGE_PRESET_DIR, "florence_mini_builtin")
    assert preset_manifest.verify_manifest(shipped)  # the shipped preset carries a manifest that holds
    directory = str(tmp_path / "florence_mini_builtin")
    shutil.copytree(shipped, directory)
    weights = os.path.join(directory, "model.weights.h5")
    _flip_one_bit(weights, offset=_offset_inside_a_weight(weights))
    with pytest.raises(PresetFileError, match=r"florence_mini_builtin/model\.weights\.h5': changed since"):
        FlorenceCLIP.from_preset(directory)


def test_without_a_manifest_the_same_bit_flip_loads_a_different_model_and_a_warning_says_so(
        tiny_clip, copy, caplog):
    """Why the manifest exists: the HDF5 container is intact, only a number changed."""
    os.remove(os.path.join(copy, "manifest.json"))
    weights = os.path.join(copy, "model.weights.h5")
    _flip_one_bit(weights, offset=_offset_inside_a_weight(weights))
    with caplog.at_level(logging.WARNING, logger="florence_keras.models.preset_directory"):
        revived = FlorenceCLIP.from_preset(copy)
    assert "has no manifest.json" in caplog.text
    assert not _same_weights(tiny_clip, revived)


def test_a_preset_without_a_manifest_loads_exactly(tiny_clip, copy, caplog):
    os.remove(os.path.join(copy, "manifest.json"))
    with caplog.at_level(logging.WARNING, logger="florence_keras.models.preset_directory"):
        revived = FlorenceCLIP.from_preset(copy)
    assert "has no manifest.json" in caplog.text
    assert _same_weights(tiny_clip, revived)
    np.testing.assert_array_equal(tiny_clip.encode_texts(TEXTS), revived.encode_texts(TEXTS))


def test_a_file_the_loader_reads_must_be_listed_in_the_manifest(copy):
    shutil.copyfile(os.path.join(copy, "model.weights.h5"), os.path.join(copy, "task.weights.h5"))
    with pytest.raises(PresetFileError, match=r"task\.weights\.h5': is not listed in manifest\.json"):
        FlorenceCLIP.from_preset(copy)


def test_a_programming_error_propagates_as_itself(copy, monkeypatch):
    def broken_from_config(cls, config, custom_objects=None):
        raise KeyError("a bug in from_config")

    monkeypatch.setattr(FlorenceBackbone, "from_config", classmethod(broken_from_config))
    with pytest.raises(KeyError, match="a bug in from_config"):
        FlorenceCLIP.from_preset(copy)


def test_a_value_refused_by_a_constructor_is_reported_with_the_file(copy):
    os.remove(os.path.join(copy, "manifest.json"))
    task = json.load(open(os.path.join(copy, "task.json")))
    task["config"]["backbone"]["config"]["image_encoder"]["config"]["num_heads"] = [3, 2]  # 16 % 3 != 0
    json.dump(task, open(os.path.join(copy, "task.json"), "w"))
    with pytest.raises(PresetFileError, match=r"task\.json': holds a config that FlorenceCLIP refused: .*"
                                              r"not divisible by num_heads\[0\]=3"):
        FlorenceCLIP.from_preset(copy)


def test_weights_of_another_model_are_reported_with_the_weights_file(copy):
    os.remove(os.path.join(copy, "manifest.json"))
    task = json.load(open(os.path.join(copy, "task.json")))
    task["config"]["backbone"]["config"]["projection_dim"] = 24  # a config from another model
    json.dump(task, open(os.path.join(copy, "task.json"), "w"))
    with pytest.raises(PresetFileError, match=r"model\.weights\.h5': does not hold this model's weights"):
        FlorenceCLIP.from_preset(copy)


def test_update_metadata_verifies_then_re_signs(copy):
    preset_directory.update_metadata(copy, {"florence_heldout_scores": {"top1": 0.5}})
    assert json.load(open(os.path.join(copy, "metadata.json")))["florence_heldout_scores"] == {"top1": 0.5}
    assert "metadata.json" in preset_manifest.verify_manifest(copy)
    _flip_one_bit(os.path.join(copy, "config.json"))
    with pytest.raises(PresetFileError, match=r"config\.json': changed since"):
        preset_directory.update_metadata(copy, {"x": 1})  # a damaged file is never re-signed


def test_saving_over_a_preset_replaces_its_manifest(tiny_clip, copy):
    stale = json.load(open(os.path.join(copy, "manifest.json")))
    with open(os.path.join(copy, "notes.txt"), "w") as f:
        f.write("added by hand")
    tiny_clip.save_to_preset(copy)
    manifest = json.load(open(os.path.join(copy, "manifest.json")))
    assert "notes.txt" in manifest["files"] and "notes.txt" not in stale["files"]
    assert preset_manifest.verify_manifest(copy)


def test_dtype_is_forwarded_to_the_backbone(copy):
    clip = FlorenceCLIP.from_preset(copy, dtype="bfloat16")
    assert clip.backbone.dtype_policy.name == "bfloat16"


@pytest.fixture(scope="module")
def fusion_presets(tmp_path_factory):
    """A tiny FlorenceFusionPretrainer preset and a FlorenceVQA preset (both with task weights)."""
    import keras

    from florence_keras.models.florence_fusion_pretrainer import FlorenceFusionPretrainer
    from florence_keras.models.florence_vqa import FlorenceVQA
    from tests.model_fixtures import tiny_clip as build_clip

    keras.utils.set_random_seed(0)
    clip = build_clip()
    pretrainer = FlorenceFusionPretrainer(clip.backbone, clip.preprocessor, text_length=12, **FUSION)
    folder = tmp_path_factory.mktemp("task_presets")
    pretrainer.save_to_preset(str(folder / "pretrainer"))
    clip = build_clip()
    vqa = FlorenceVQA(clip.backbone, clip.preprocessor, answer_vocabulary=["yes", "no"], question_length=12, **FUSION)
    vqa.save_to_preset(str(folder / "vqa"))
    return {"pretrainer": pretrainer, "pretrainer_dir": str(folder / "pretrainer"), "vqa": vqa,
            "vqa_dir": str(folder / "vqa")}


FUSION = dict(fusion_dim=16, fusion_layers=1, fusion_heads=2)


def test_a_preset_of_another_task_gives_only_its_backbone_weights(fusion_presets, monkeypatch, caplog):
    from florence_keras.models.florence_vqa import FlorenceVQA

    pretrainer, preset = fusion_presets["pretrainer"], fusion_presets["pretrainer_dir"]
    assert os.path.isfile(os.path.join(preset, "task.weights.h5"))  # the pretrainer's heads: not this Task's

    def refuse(self, path):
        raise AssertionError(f"read another Task's task weights: {path}")

    monkeypatch.setattr(FlorenceVQA, "load_task_weights", refuse)
    with caplog.at_level(logging.INFO, logger=preset_directory.__name__):
        vqa = preset_directory.load_task(FlorenceVQA, preset, answer_vocabulary=["yes", "no"], question_length=12,
                                         **FUSION)
    assert "holds a FlorenceFusionPretrainer, not a FlorenceVQA" in caplog.text
    assert _same_weights(vqa.backbone, pretrainer.backbone)
    # The fusion stack (same names and shapes in both Tasks) is this Task's own fresh one, not the pretrainer's.
    assert not _same_weights(vqa.fusion, pretrainer.fusion)


def test_a_preset_of_the_same_task_gives_its_task_weights(fusion_presets):
    from florence_keras.models.florence_vqa import FlorenceVQA

    saved_vqa = fusion_presets["vqa"]
    loaded = preset_directory.load_task(FlorenceVQA, fusion_presets["vqa_dir"])
    assert _same_weights(loaded, saved_vqa) and len(loaded.weights) == len(saved_vqa.weights)
    # Without the task weights the head would be a fresh draw: the loader did read them.
    fresh = preset_directory.load_task(FlorenceVQA, fusion_presets["vqa_dir"], load_weights=False)
    assert not _same_weights(fresh.head_output, saved_vqa.head_output)

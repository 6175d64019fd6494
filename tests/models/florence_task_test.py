"""FlorenceTask: presets listed where keras-hub users look, one `from_preset` for every kind of preset."""

import pytest

import florence_keras
from florence_keras.models import presets
from florence_keras.models.florence_backbone import FlorenceBackbone
from florence_keras.models.florence_clip import FlorenceCLIP
from florence_keras.models.florence_task import FlorenceTask

TRAINED = "florence_mini_builtin"


def test_presets_lists_architecture_and_trained_presets_in_keras_hub_layout():
    listed = FlorenceCLIP.presets
    assert set(listed) == set(presets.ARCHITECTURE_PRESETS) | {TRAINED}
    assert all(set(entry) >= {"metadata"} and "description" in entry["metadata"] for entry in listed.values())
    assert listed["florence_tiny"]["metadata"]["kind"] == "architecture"
    assert listed[TRAINED]["metadata"]["kind"] == "trained"
    assert set(florence_keras.list_presets()) == set(listed)  # the package-level spelling keeps working


def test_the_trained_preset_entry_describes_the_model_it_loads():
    clip = FlorenceCLIP.from_preset(TRAINED)
    assert FlorenceCLIP.presets[TRAINED]["metadata"]["params"] == clip.backbone.count_params()
    assert FlorenceCLIP.presets[TRAINED]["metadata"]["path"].endswith(TRAINED)


def test_a_task_lists_only_the_trained_presets_saved_from_it():
    class OtherTask(FlorenceTask):  # not a FlorenceCLIP: the shipped CLIP preset is not one of its presets
        backbone_cls = FlorenceBackbone

    assert set(OtherTask.presets) == set(presets.ARCHITECTURE_PRESETS)


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown preset 'nonsense'.*Valid names: .*florence_huge.*"
                                         "florence_mini_builtin"):
        FlorenceCLIP.from_preset("nonsense")


def test_architecture_kwargs_go_to_the_backbone_and_the_rest_to_the_task():
    clip = FlorenceCLIP.from_preset("florence_mini", image_size=32, image_encoder={"drop_path_rate": 0.25},
                                    projection_dim=24, name="my_clip")
    assert clip.backbone.image_encoder.drop_path_rate == 0.25
    assert clip.backbone.image_encoder.embed_dim == presets.ARCHITECTURE_PRESETS["florence_mini"]["image_encoder"][
        "embed_dim"]
    assert clip.encode_texts(["a red circle"]).shape == (1, 24)
    assert clip.name == "my_clip"


def test_the_base_class_builds_nothing_by_itself():
    with pytest.raises(ValueError, match="FlorenceTask is a base class"):
        FlorenceTask.from_preset("florence_mini")

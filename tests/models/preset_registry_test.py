"""The preset registry: every name, and what a name, a directory or a handle resolves to."""

import os

import pytest

from florence_keras.models import preset_registry
from florence_keras.models import presets


def test_list_presets_is_architectures_then_the_shipped_trained_presets():
    shipped = sorted(d for d in os.listdir(preset_registry.PACKAGE_PRESET_DIR)
                     if os.path.isfile(os.path.join(preset_registry.PACKAGE_PRESET_DIR, d, "config.json")))
    assert "florence_mini_builtin" in shipped
    assert preset_registry.list_presets() == sorted(presets.ARCHITECTURE_PRESETS) + shipped


@pytest.mark.parametrize("preset, kind", [
    ("florence_tiny", "architecture"),
    ("florence_mini_builtin", "trained"),
    ("hf://someone/florence", "path"),
    ("kaggle://someone/florence/keras/mini", "path"),
])
def test_resolve_classifies_names_and_handles(preset, kind):
    assert preset_registry.resolve(preset).kind == kind


def test_resolve_directories_files_and_unknown_names(tmp_path):
    assert preset_registry.resolve(tmp_path) == ("path", str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="is a file; a preset is a directory"):
        preset_registry.resolve(tmp_path / "config.json")
    with pytest.raises(ValueError, match="Unknown preset 'florence_gigantic'.*Valid names: florence_base"):
        preset_registry.resolve("florence_gigantic")
    with pytest.raises(ValueError, match="Valid names: a, b$"):
        preset_registry.resolve("florence_gigantic", valid_names=["a", "b"])
    with pytest.raises(ValueError, match="must be a name, a directory or a handle"):
        preset_registry.resolve(3)


def test_load_preprocessor_of_a_trained_preset_and_an_architecture(tmp_path):
    from florence_keras.models import FlorenceCLIP

    trained = preset_registry.load_preprocessor("florence_mini_builtin")
    expected = FlorenceCLIP.from_preset("florence_mini_builtin").preprocessor  # what the Task itself loads
    texts = ["a red circle", "is the yellow hexagon in front of the green hexagon?"]
    assert trained.sequence_length == expected.sequence_length
    assert trained.tokenize(texts).numpy().tolist() == expected.tokenize(texts).numpy().tolist()
    architecture = preset_registry.load_preprocessor("florence_tiny", image_size=64)
    assert architecture.sequence_length == presets.architecture_config("florence_tiny")["text_encoder"][
        "max_sequence_length"]
    assert architecture.tokenize(texts).numpy().tolist() == trained.tokenize(texts).numpy().tolist()  # CLIP's BPE

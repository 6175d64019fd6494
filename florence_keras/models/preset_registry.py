"""One place that knows every preset name: architecture presets and trained ones.

A trained preset is a keras-hub preset directory shipped inside the package
(`florence_keras/presets/<name>/`). Anything else given to `from_preset` must be
an existing directory or a keras-hub handle (`hf://`, `kaggle://`, `gs://`, ...).
"""

import collections
import json
import os

from florence_keras.models import presets

PACKAGE_PRESET_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "presets")
HANDLE_PREFIXES = ("hf://", "kaggle://", "gs://", "modelscope://", "file://")

Resolved = collections.namedtuple("Resolved", ["kind", "path"])


def trained_presets():
    """Names of the trained presets shipped with the package."""
    if not os.path.isdir(PACKAGE_PRESET_DIR):
        return []
    return sorted(
        d for d in os.listdir(PACKAGE_PRESET_DIR)
        if os.path.exists(os.path.join(PACKAGE_PRESET_DIR, d, "config.json"))
    )


def list_presets():
    """All preset names: architecture presets then trained presets."""
    return sorted(presets.ARCHITECTURE_PRESETS) + trained_presets()


def resolve(preset, valid_names=None):
    """Classifies `preset` as an architecture name, a trained name, or a path/handle.

    Args:
        preset: a name, a directory or a handle.
        valid_names: the names to list when `preset` is unknown (default: all).
    """
    if not isinstance(preset, (str, os.PathLike)):
        raise ValueError(f"`preset` must be a name, a directory or a handle. Received: {preset!r}")
    preset = os.fspath(preset)
    if preset in presets.ARCHITECTURE_PRESETS:
        return Resolved("architecture", None)
    if preset in trained_presets():
        return Resolved("trained", os.path.join(PACKAGE_PRESET_DIR, preset))
    if preset.startswith(HANDLE_PREFIXES) or os.path.isdir(preset):
        return Resolved("path", preset)
    if os.path.exists(preset):
        raise ValueError(f"Preset {preset!r} is a file; a preset is a directory.")
    raise ValueError(
        f"Unknown preset {preset!r}: not a preset name, an existing directory or a handle. "
        f"Valid names: {', '.join(list_presets() if valid_names is None else valid_names)}"
    )


def build_architecture_preprocessor(name, image_size=224):
    """The preprocessor (CLIP tokenizer, image converter) of an architecture preset."""
    from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
    from florence_keras.models.florence_image_converter import FlorenceImageConverter
    from florence_keras.models.florence_tokenizer import FlorenceTokenizer

    config = presets.architecture_config(name, image_size=image_size)
    return FlorenceCLIPPreprocessor(
        FlorenceTokenizer(),
        FlorenceImageConverter(image_size=(image_size, image_size)),
        sequence_length=config["text_encoder"]["max_sequence_length"],
    )


def load_preprocessor(preset, image_size=224):
    """The preprocessor of any preset: an architecture preset's (`build_architecture_preprocessor`) or the one
    saved in a preset directory (`FlorenceCLIPPreprocessor.from_preset`), e.g. for a recipe that tokenizes its
    data before it builds the Task."""
    from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor

    resolved = resolve(preset)
    if resolved.kind == "architecture":
        return build_architecture_preprocessor(preset, image_size)
    return FlorenceCLIPPreprocessor.from_preset(resolved.path)


def build_architecture_backbone(name, image_size=224, dtype=None, **overrides):
    """A randomly initialised `FlorenceBackbone` at an architecture preset's published size."""
    config = presets.architecture_config(name, image_size=image_size, **overrides)
    return presets.build_backbone(config, dtype=dtype)


def build_architecture_preset(task_cls, name, image_size=224, dtype=None, **overrides):
    """A randomly initialised task at an architecture preset's published size."""
    backbone = build_architecture_backbone(name, image_size=image_size, dtype=dtype, **overrides)
    return task_cls(backbone=backbone, preprocessor=build_architecture_preprocessor(name, image_size))


def _trained_preset_class(name):
    """The registered Keras name of the Task saved in a trained preset (`task.json`), or None."""
    try:
        with open(os.path.join(PACKAGE_PRESET_DIR, name, "task.json"), encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError):  # a damaged shipped preset: from_preset names the file when it is loaded
        return None
    return document.get("registered_name") if isinstance(document, dict) else None


def _trained_preset_description(name):
    try:
        with open(os.path.join(PACKAGE_PRESET_DIR, name, "metadata.json"), encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def presets_for(task_cls):
    """The presets `task_cls.from_preset` loads, in keras-hub's `presets` layout.

    Every architecture preset (random init) and every shipped trained preset
    whose saved Task is `task_cls` or one of its subclasses:
    `{name: {"metadata": {"description", "params", "path", "kind"}, "kaggle_handle": None}}`.
    """
    import keras

    result = {}
    for name in sorted(presets.ARCHITECTURE_PRESETS):
        result[name] = {
            "metadata": {
                "description": f"{name}: the published Florence architecture at this size, randomly initialised.",
                "params": None,
                "path": None,
                "kind": "architecture",
            },
            "kaggle_handle": None,
        }
    for name in trained_presets():
        registered = _trained_preset_class(name)
        saved_cls = keras.saving.get_registered_object(registered) if registered else None
        if saved_cls is None or not isinstance(saved_cls, type) or not issubclass(saved_cls, task_cls):
            continue
        metadata = _trained_preset_description(name)
        training = metadata.get("florence_training", {})
        base = training.get("preset", "a Florence architecture") if isinstance(training, dict) else "?"
        result[name] = {
            "metadata": {
                "description": f"{name}: {base} trained by florence_keras (see its metadata.json).",
                "params": metadata.get("parameter_count"),
                "path": os.path.join(PACKAGE_PRESET_DIR, name),
                "kind": "trained",
            },
            "kaggle_handle": None,
        }
    return result

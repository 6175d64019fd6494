"""Starting a fusion Task (`FlorenceVQA`) from a `FlorenceFusionPretrainer` preset's fusion weights."""

import json
import os

# The settings that make two fusion stacks weight-compatible (same variables, same shapes, same image tokens).
FUSION_SETTINGS = ("fusion_dim", "fusion_layers", "fusion_heads", "fusion_intermediate_dim", "image_token_stage")


def preset_task_class(preset):
    """The class name in a preset directory's `task.json` (e.g. "FlorenceVQA"), or None when `preset` is not a
    directory holding a readable one (a name, a handle, a backbone-only preset)."""
    path = os.path.join(os.fspath(preset), "task.json") if isinstance(preset, (str, os.PathLike)) else None
    if path is None or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError):
        return None  # the preset loader names a damaged file
    return document.get("class_name") if isinstance(document, dict) else None


def is_fusion_pretrainer_preset(preset):
    """True when `preset` is a preset directory saved by `FlorenceFusionPretrainer` (its `task.json`)."""
    return preset_task_class(preset) == "FlorenceFusionPretrainer"


def fusion_settings(preset):
    """The `FUSION_SETTINGS` (+ `dropout`) of a `FlorenceFusionPretrainer` or `FlorenceVQA` preset directory, read
    from its `task.json` (nothing is built); a FlorenceVQA preset also gives its `question_length`,
    `image_position_embedding`, `image_scales`, `image_detail`, `image_summary` (a pretrainer's is "mean",
    the image-stream summary it was trained with), `question_prior` (False in presets saved before it) and the
    `dense_label_*` settings (0 classes: none)."""
    task_class = preset_task_class(preset)
    if task_class not in ("FlorenceFusionPretrainer", "FlorenceVQA"):
        raise ValueError(f"{preset} is not a FlorenceFusionPretrainer or FlorenceVQA preset directory (its "
                         "task.json names another Task, or there is none).")
    with open(os.path.join(os.fspath(preset), "task.json"), encoding="utf-8") as f:
        config = json.load(f).get("config", {})
    names = FUSION_SETTINGS + ("dropout",)
    if task_class == "FlorenceVQA":
        names += ("question_length", "image_position_embedding", "image_scales", "image_detail", "image_summary",
                  "question_prior", "dense_label_classes", "dense_label_channels", "dense_label_sub_cells",
                  "dense_label_upsamplings")
        config.setdefault("image_position_embedding", False)  # saved before the argument existed
        config.setdefault("question_prior", False)  # (likewise)
        config.setdefault("image_detail", False)  # (likewise)
        config.setdefault("image_summary", "mean")  # (likewise)
        config.setdefault("dense_label_classes", 0)  # (likewise)
        config.setdefault("dense_label_channels", 96)
        config.setdefault("dense_label_sub_cells", 4)
        config.setdefault("dense_label_upsamplings", None)  # (None: to the image's resolution)
        config["image_scales"] = tuple(config.get("image_scales", (1,)))
    else:  # the pretrainer's image stream starts with the mean token: a VQA going on from it keeps that
        names += ("image_summary",)
        config["image_summary"] = "mean"
    return {name: config.get(name) for name in names}


def copy_fusion_weights(source, target):
    """Copies the fusion stack (and the image-token LayerNorm of `image_token_stage`) of `source` into `target`.

    Args:
        source: a `FlorenceFusionPretrainer` (or any Task with a `fusion`).
        target: a `FlorenceVQA` (or any Task with a `fusion`) with the same `FUSION_SETTINGS`.

    Raises:
        ValueError: the two stacks differ in a setting (each named with both values).

    Returns:
        int, the number of weight tensors copied.
    """
    differences = [f"{name}: {getattr(source, name, None)!r} (pretrained) vs {getattr(target, name, None)!r}"
                   for name in FUSION_SETTINGS if getattr(source, name, None) != getattr(target, name, None)]
    if differences:
        raise ValueError("The pretrained fusion does not fit this model; build it with the pretrained fusion "
                         "settings. Differences: " + "; ".join(differences))
    layers = [("fusion", source.fusion, target.fusion)]
    if getattr(source, "image_token_stage", None) is not None:
        layers.append(("image_token_norm", source.image_token_norm, target.image_token_norm))
    copied = 0
    for name, from_layer, to_layer in layers:
        values = from_layer.get_weights()
        if len(values) != len(to_layer.weights):
            raise ValueError(f"{name}: {len(values)} pretrained weights for {len(to_layer.weights)} variables.")
        to_layer.set_weights(values)
        copied += len(values)
    return copied


def load_fusion_weights(target, preset, with_backbone=False):
    """Loads the `FlorenceFusionPretrainer` preset `preset` (its manifest verified) and copies its fusion weights
    into `target` (`copy_fusion_weights`), and its backbone's too when `with_backbone` (the pretraining trains the
    encoders as well). Returns the number of weight tensors copied."""
    from florence_keras.models.florence_fusion_pretrainer import FlorenceFusionPretrainer

    if not is_fusion_pretrainer_preset(preset):
        raise ValueError(f"{preset} is not a FlorenceFusionPretrainer preset directory (its task.json names "
                         "another Task, or there is none).")
    source = FlorenceFusionPretrainer.from_preset(preset)
    copied = copy_fusion_weights(source, target)
    if with_backbone:
        values = source.backbone.get_weights()
        if len(values) != len(target.backbone.weights):
            raise ValueError(f"The pretrained backbone has {len(values)} weights, this model's "
                             f"{len(target.backbone.weights)}.")
        target.backbone.set_weights(values)
        copied += len(values)
    return copied

"""`--data=builtin` for the evaluation recipes: the built-in scenes' splits as ImageFolder or COCO captions.

Plain arguments only: the recipes' `--builtin_*` flags are defined and read in `recipes/evaluation_flags.py`.
"""

import os

from florence_keras.data.builtin_dataset import ensure_builtin_dataset

BUILTIN = "builtin"
# The built-in dataset the recipes write by default: pretraining's defaults (recipes/pretrain_unicl.py), so a
# `--builtin_dir` pointing at a pretraining run's `MODEL_DIR/data` reuses its files.
DEFAULT_SETTINGS = {"num_train": 4000, "num_heldout": 600, "image_size": 64, "seed": 0}
_KINDS = {"labels": ("imagefolder", "imagefolder"), "captions": ("coco", "coco")}


def is_builtin(data):
    """True for `["builtin"]` / `"builtin"` (the flag value)."""
    values = [data] if isinstance(data, (str, os.PathLike)) else list(data or [])
    return values == [BUILTIN]


def resolve_data(data, data_format, kind, split, builtin_dir, **settings):
    """The data paths and format a recipe reads: `data` itself, or the built-in split for `builtin`.

    Args:
        data: the recipe's `--data`: a path or a list of paths, or `["builtin"]`.
        data_format: the recipe's `--data_format` (ignored for `builtin`).
        kind: "labels" (image-label data: the ImageFolder form, one class per shape) or "captions" (image-text
            data: the COCO-captions form).
        split: "train" or "heldout" (the held-out split's shape-colour pairs never occur in training).
        builtin_dir: where the built-in data is written, or reused when it was written with the same settings.
        **settings: `num_train`, `num_heldout`, `image_size`, `seed` (default `DEFAULT_SETTINGS`).

    Returns:
        `(paths, data_format)`: a list of paths and the format to read them with.
    """
    if not is_builtin(data):
        return ([os.fspath(data)] if isinstance(data, (str, os.PathLike)) else list(data)), data_format
    if kind not in _KINDS:
        raise ValueError(f"`kind` must be one of {sorted(_KINDS)}. Received: kind={kind!r}")
    if split not in ("train", "heldout"):
        raise ValueError(f"`split` must be 'train' or 'heldout'. Received: split={split!r}")
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS))
    if unknown:
        raise ValueError(f"Unknown built-in setting(s) {unknown}; expected {sorted(DEFAULT_SETTINGS)}.")
    settings = {**DEFAULT_SETTINGS, **settings}
    paths = ensure_builtin_dataset(os.fspath(builtin_dir), settings["num_train"], settings["num_heldout"],
                                   settings["image_size"], settings["seed"])
    written_format, recipe_format = _KINDS[kind]
    return [paths[written_format][split]], recipe_format

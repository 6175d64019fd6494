"""The built-in scenes as a VQA v2 set (questions + annotations JSON per split, written once and reused)."""

import json
import os

from florence_keras.data.builtin_dataset import write_builtin_dataset

# The built-in VQA files name their images in their own "images" list (relative to the data folder).
BUILTIN_IMAGE_TEMPLATE = "{file_name}"


def ensure_builtin_vqa_data(directory, num_train, num_heldout, image_size=64, seed=0):
    """Writes the built-in scenes' `vqa` format once; returns the VQA v2 files of each split.

    The held-out split's scenes are never in the training split (other seeds; their primary objects have held-out
    shape-colour combinations). Each question has 10 identical human answers (the scene's ground truth).

    Returns:
        dict: `"train"` / `"heldout"`: `{"questions", "annotations"}` paths; `"image_dir"`: the folder the
        `{file_name}` template is relative to; `"image_template"`.
    """
    settings = {"num_train": num_train, "num_heldout": num_heldout, "image_size": image_size, "seed": seed,
                "formats": ["vqa"]}
    marker = os.path.join(directory, "florence_builtin_vqa_settings.json")
    paths = {split: {"questions": os.path.join(directory, "vqa", f"questions_{split}.json"),
                     "annotations": os.path.join(directory, "vqa", f"annotations_{split}.json")}
             for split in ("train", "heldout")}
    paths.update(image_dir=directory, image_template=BUILTIN_IMAGE_TEMPLATE)
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            if json.load(f) == settings:
                return paths
        os.remove(marker)  # other settings: rewritten below, marked complete only at the end
    write_builtin_dataset(directory, num_train, num_heldout, image_size=image_size, seed=seed, formats=("vqa",),
                          verbose=True)
    with open(marker, "w", encoding="utf-8") as f:  # written last: marks a complete dataset
        json.dump(settings, f)
    return paths

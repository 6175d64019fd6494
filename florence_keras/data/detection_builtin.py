"""The built-in scenes' COCO instances (`instances_{split}.json`: boxes of every object), written once and reused."""

import json
import os

from florence_keras.data.builtin_dataset import write_builtin_dataset


def ensure_builtin_detection_data(directory, num_train, num_heldout, image_size=64, seed=0):
    """Writes the built-in scenes with their COCO instances once; returns `{"train": json, "heldout": json}`.

    Every object of a scene is a box of its shape's category (8 shapes); the held-out split's scenes are never
    in the training split. A directory written with the same settings is reused.
    """
    settings = {"num_train": num_train, "num_heldout": num_heldout, "image_size": image_size, "seed": seed,
                "formats": ["instances"]}
    marker = os.path.join(directory, "florence_builtin_detection_settings.json")
    paths = {"train": os.path.join(directory, "instances_train.json"),
             "heldout": os.path.join(directory, "instances_heldout.json")}
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            if json.load(f) == settings:
                return paths
    written = write_builtin_dataset(directory, num_train, num_heldout, image_size=image_size, seed=seed,
                                    formats=("instances",))
    with open(marker, "w", encoding="utf-8") as f:  # written last: marks a complete dataset
        json.dump(settings, f)
    return dict(written["instances"])

"""The built-in scenes' depth pairs (`depth_{split}.csv`: image, 16-bit depth PNG in mm), written once and reused."""

import json
import os

from florence_keras.data.builtin_dataset import write_builtin_dataset

# The depth recipes' scenes: a camera over a floor, where depth is visible in the image (`ground_plane.GroundPlane`).
# In the default "flat" scenes an object's depth is drawn independently of its look, so it cannot be learned.
DEPTH_LAYOUT = "ground_plane"


def ensure_builtin_depth_data(directory, num_train, num_heldout, image_size=64, seed=0, layout=DEPTH_LAYOUT):
    """Writes the built-in scenes with their depth PNGs once; returns `{"train": csv, "heldout": csv}`.

    The held-out split's scenes are never in the training split (other seeds; their primary objects have
    held-out shape-colour combinations). A directory written with the same settings is reused.

    Args:
        directory: where the scenes go.
        num_train, num_heldout: scenes per split.
        image_size: the scenes' side.
        seed: the scenes' seed.
        layout: `SceneGenerator`'s layout: `"ground_plane"` (default) or `"flat"`.
    """
    settings = {"num_train": num_train, "num_heldout": num_heldout, "image_size": image_size, "seed": seed,
                "formats": ["csv", "depth"], "layout": layout}
    marker = os.path.join(directory, "florence_builtin_depth_settings.json")
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            if json.load(f) == settings:
                return {"train": os.path.join(directory, "depth_train.csv"),
                        "heldout": os.path.join(directory, "depth_heldout.csv")}
        os.remove(marker)  # other settings: rewritten below, marked complete only at the end
    paths = write_builtin_dataset(directory, num_train, num_heldout, image_size=image_size, seed=seed,
                                  formats=("csv", "depth"), layout=layout)
    with open(marker, "w", encoding="utf-8") as f:  # written last: marks a complete dataset
        json.dump(settings, f)
    return dict(paths["depth"])

"""The built-in video demo: clips of moving scenes with a labelled direction, in both layouts, written once."""

import json
import os

from florence_keras.data.builtin_dataset import write_builtin_dataset


def ensure_builtin_video_data(directory, num_train=800, num_heldout=200, image_size=64, seed=0, num_frames=8,
                              distractor_speed=0.25):
    """Writes the built-in clips once (reused when the same settings were written before).

    Layout (`SceneGenerator.clip`: the primary object moves left / right / up / down; held-out clips have the
    held-out (shape, colour) combinations; the other objects drift at `distractor_speed` times their scene speed,
    so the labelled motion is the clip's dominant one — with `1.0`, the first layout, other objects moved as fast
    as the labelled one and a clip's label was ambiguous in the 60% of clips with several objects):

        video/{train,heldout}/moving_<direction>/<split>_NNNNNN.avi   class-per-folder MJPG clips
        video_captions_{train,heldout}.csv                             filepath,caption ("a red circle moving left")

    Returns:
        dict: `train_dir`, `heldout_dir` (the class-per-folder roots), `train_captions`, `heldout_captions`.
    """
    settings = {"num_train": num_train, "num_heldout": num_heldout, "image_size": image_size, "seed": seed,
                "num_frames": num_frames, "layout": 2, "distractor_speed": distractor_speed}
    marker = os.path.join(directory, "florence_video_settings.json")
    paths = {
        "train_dir": os.path.join(directory, "video", "train"),
        "heldout_dir": os.path.join(directory, "video", "heldout"),
        "train_captions": os.path.join(directory, "video_captions_train.csv"),
        "heldout_captions": os.path.join(directory, "video_captions_heldout.csv"),
    }
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            if json.load(f) == settings:
                return paths
    write_builtin_dataset(directory, num_train, num_heldout, image_size=image_size, seed=seed, formats=("video",),
                          clip_frames=num_frames, verbose=True, clip_distractor_speed=distractor_speed)
    with open(marker, "w", encoding="utf-8") as f:  # written last: marks complete data
        json.dump(settings, f)
    return paths

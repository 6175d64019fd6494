"""ensure_builtin_depth_data: ground-plane scenes by default, written once, rewritten when the settings change."""

import os

import cv2
import numpy as np

from florence_keras.data.depth_builtin import ensure_builtin_depth_data
from florence_keras.data.scene_generator import SceneGenerator


def _first_depth(csv_path):
    with open(csv_path, encoding="utf-8") as f:
        row = f.read().splitlines()[1].split(",")
    return cv2.imread(os.path.join(os.path.dirname(csv_path), row[1]), cv2.IMREAD_UNCHANGED)


def test_ground_plane_by_default_reused_and_rewritten(tmp_path):
    paths = ensure_builtin_depth_data(str(tmp_path), num_train=3, num_heldout=2, image_size=32)
    ground = SceneGenerator(image_size=32, layout="ground_plane")
    np.testing.assert_array_equal(_first_depth(paths["train"]), ground.scene(0).depth_png16())
    np.testing.assert_array_equal(_first_depth(paths["heldout"]), ground.scene(0, "heldout").depth_png16())
    written = os.path.getmtime(paths["train"])
    assert ensure_builtin_depth_data(str(tmp_path), 3, 2, image_size=32) == paths  # reused, not rewritten
    assert os.path.getmtime(paths["train"]) == written
    flat = ensure_builtin_depth_data(str(tmp_path), 3, 2, image_size=32, layout="flat")
    np.testing.assert_array_equal(_first_depth(flat["train"]), SceneGenerator(image_size=32).scene(0).depth_png16())

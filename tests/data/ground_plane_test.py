"""The built-in scenes' `ground_plane` layout: depth follows from the image (size and row); the default is unchanged."""

import hashlib
import json
import os

import cv2
import numpy as np
import pytest

from florence_keras.data import ground_plane
from florence_keras.data import scene as scene_lib
from florence_keras.data.builtin_dataset import write_builtin_dataset
from florence_keras.data.scene_generator import SceneGenerator

SIZE = 64
# sha256 of the default (flat) scenes' pixels, depth, boxes and captions and of a clip, taken before the
# `layout` option existed (commit 6d4ee8f): the default output must stay byte-identical.
DEFAULT_SCENES_SHA256 = "dfe00d3c214d64bfc5b0de54e95f15b29ef36d8599a75b486167b68cd5c266e4"


def _default_scenes_digest(**kwargs):
    digest = hashlib.sha256()
    for size, seed in ((64, 0), (96, 3)):
        generator = SceneGenerator(image_size=size, seed=seed, **kwargs)
        for split in ("train", "heldout", "test"):
            for index in range(4):
                scene = generator.scene(index, split)
                for array in (scene.image, scene.depth, scene.depth_png16(), scene.boxes):
                    digest.update(array.tobytes())
                digest.update(scene.caption.encode())
        clip = generator.clip(1, 4)
        digest.update(clip.frames.tobytes())
        digest.update(clip.depths.tobytes())
    return digest.hexdigest()


def test_default_scenes_are_byte_identical_to_before_the_layout_option():
    assert _default_scenes_digest() == DEFAULT_SCENES_SHA256
    assert _default_scenes_digest(layout="flat") == DEFAULT_SCENES_SHA256


@pytest.fixture(scope="module")
def scenes():
    generator = SceneGenerator(image_size=SIZE, seed=0, layout="ground_plane")
    return [generator.scene(i, split) for split in ("train", "heldout") for i in range(30)]


def _expected_background(wall_depth):
    """Independent pinhole geometry: focal = S px, horizontal axis, camera CAMERA_HEIGHT m above the floor."""
    rows = (np.arange(SIZE) + 0.5) / SIZE  # pixel centres, fraction of the side
    above = rows - ground_plane.HORIZON
    floor = np.where(above > 0, ground_plane.CAMERA_HEIGHT / np.maximum(above, 1e-9), np.inf)
    return np.minimum(floor, wall_depth)  # the wall hides the floor beyond it


def test_background_depth_is_the_floor_then_the_wall(scenes):
    for scene in scenes:
        covered = np.any(scene.masks, axis=0) if scene.masks else np.zeros((SIZE, SIZE), bool)
        expected = np.repeat(_expected_background(scene.background.ground.wall_depth)[:, None], SIZE, 1)
        np.testing.assert_allclose(scene.depth[~covered], expected[~covered], rtol=1e-5)
        assert scene.depth.dtype == np.float32


def test_object_depth_sets_its_apparent_size_and_the_row_it_stands_on(scenes):
    count = 0
    for scene in scenes:
        for obj, mask in zip(scene.objects, scene.masks):
            count += 1
            low, high = scene_lib.SIZE_RADII[obj.size]
            world = obj.radius / SIZE * obj.depth / ground_plane.REFERENCE_DEPTH  # radius at the reference depth
            assert low - 1e-9 <= world <= high + 1e-9  # apparent radius = size-word radius x reference / depth
            bottom = (obj.center[1] + obj.radius) / SIZE
            assert bottom == pytest.approx(ground_plane.HORIZON + ground_plane.CAMERA_HEIGHT / obj.depth)
            assert ground_plane.OBJECT_DEPTHS[0] <= obj.depth <= ground_plane.OBJECT_DEPTHS[1]
            np.testing.assert_array_equal(scene.depth[mask], np.float32(obj.depth))
            assert obj.radius + 1 <= obj.center[0] <= SIZE - obj.radius - 1  # inside the image
        ordered = sorted(scene.objects, key=lambda o: o.depth)
        bottoms = [o.center[1] + o.radius for o in ordered]
        assert bottoms == sorted(bottoms, reverse=True)  # nearer objects stand lower in the image
    assert count > 40


def test_an_objects_depth_can_be_read_from_its_pixels(scenes):
    """From the image alone: the lowest row of a fully visible circle gives its depth by the floor's geometry."""
    errors = []
    for scene in scenes:
        for obj, mask in zip(scene.objects, scene.masks):
            full = scene_lib.shape_mask(obj.shape, obj.center, obj.radius, obj.angle, SIZE).astype(bool)
            if obj.shape != "circle" or not np.array_equal(mask, full) or obj.radius < 4:
                continue
            ys = np.nonzero(mask)[0]
            row = (ys.max() + 1.0) / SIZE  # the circle's lowest pixel's lower edge
            estimate = ground_plane.CAMERA_HEIGHT / (row - ground_plane.HORIZON)
            errors.append(abs(estimate - obj.depth) / obj.depth)
    assert len(errors) >= 3
    assert max(errors) < 0.12  # one pixel of row at the far end


def test_floor_and_wall_differ_in_brightness(scenes):
    for scene in scenes:
        covered = np.any(scene.masks, axis=0)
        grey = scene.image.astype(np.float64).mean(-1)
        wall = (scene.depth == np.float32(scene.background.ground.wall_depth)) & ~covered
        floor = (scene.depth < scene.background.ground.wall_depth) & ~covered
        assert abs(grey[wall].mean() - grey[floor].mean()) >= 15


def test_ground_plane_scenes_keep_splits_and_determinism():
    a = SceneGenerator(image_size=SIZE, seed=1, layout="ground_plane")
    b = SceneGenerator(image_size=SIZE, seed=1, layout="ground_plane")
    np.testing.assert_array_equal(a.scene(3).image, b.scene(3).image)
    np.testing.assert_array_equal(a.scene(3, "heldout").depth, b.scene(3, "heldout").depth)
    primary = a.scene(5, "heldout").primary
    assert (primary.shape, primary.colour) in set(a.heldout_combinations)
    with pytest.raises(ValueError, match="layout"):
        SceneGenerator(image_size=SIZE, layout="sky")


def test_write_builtin_dataset_writes_ground_plane_depth(tmp_path):
    paths = write_builtin_dataset(str(tmp_path), num_train=3, num_heldout=0, formats=("csv", "depth"),
                                  layout="ground_plane")
    generator = SceneGenerator(image_size=SIZE, seed=0, layout="ground_plane")
    with open(paths["info"], encoding="utf-8") as f:
        assert json.load(f)["layout"] == "ground_plane"
    with open(paths["depth"]["train"], encoding="utf-8") as f:
        rows = [line.strip().split(",") for line in f][1:]
    for index, (_, depth_file) in enumerate(rows):
        stored = cv2.imread(os.path.join(str(tmp_path), depth_file), cv2.IMREAD_UNCHANGED)
        assert stored.dtype == np.uint16
        np.testing.assert_array_equal(stored, generator.scene(index).depth_png16())


def test_docstring_example_runs():
    import doctest

    result = doctest.testmod(ground_plane, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 5 and result.failed == 0

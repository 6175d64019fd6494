"""The built-in dense label maps: a hand-worked scene, the files on disk, and the path from an image to its map."""

import cv2
import numpy as np

from florence_keras.data import scene as scene_lib
from florence_keras.data.builtin_dataset import dense_label_classes
from florence_keras.data.builtin_dataset import dense_label_path
from florence_keras.data.builtin_dataset import write_builtin_dataset
from florence_keras.data.scene_generator import SceneGenerator


def _object(shape, colour, center, radius, depth):
    return scene_lib.SceneObject(shape=shape, colour=colour, size="large", radius=radius, center=center, angle=0.0,
                                 depth=depth, rgb=scene_lib.COLOURS[colour])


def test_two_overlapping_objects_by_hand():
    size = 32
    near = _object("circle", "blue", (12.0, 16.0), 6.0, 0.2)
    far = _object("square", "red", (20.0, 16.0), 6.0, 0.8)
    alone = _object("star", "green", (26.0, 4.0), 3.0, 0.5)
    shapes, colours = scene_lib.SHAPES, tuple(scene_lib.COLOURS)
    labels = scene_lib.dense_label_map([near, far, alone], size, shapes, colours)
    assert labels.dtype == np.uint8 and labels.shape == (size, size, 3)
    full = {name: scene_lib.shape_mask(o.shape, o.center, o.radius, o.angle, size).astype(bool)
            for name, o in (("near", near), ("far", far), ("alone", alone))}
    hidden_far = full["far"] & full["near"]
    assert hidden_far.sum() >= scene_lib.MIN_OCCLUDED_FRACTION * full["far"].sum()  # the case is what it claims
    background = ~(full["near"] | full["far"] | full["alone"])
    assert (labels[background] == 0).all()
    # The near circle: in full view, everywhere it is drawn.
    assert (labels[full["near"]] == [1, shapes.index("circle") + 1, colours.index("blue") + 1]).all()
    # The far square: partly hidden, only where it shows.
    shown = full["far"] & ~full["near"]
    assert shown.sum() > 0 and (labels[shown] == [2, shapes.index("square") + 1, colours.index("red") + 1]).all()
    assert not (labels[hidden_far][:, 1] == shapes.index("square") + 1).any()
    # The star, touching nothing: in full view.
    assert (labels[full["alone"]] == [1, shapes.index("star") + 1, colours.index("green") + 1]).all()


def test_partly_hidden_by_hand_at_the_threshold():
    size = 32
    far = _object("square", "red", (20.0, 16.0), 6.0, 0.8)
    full_far = scene_lib.shape_mask(far.shape, far.center, far.radius, far.angle, size).astype(bool)
    for x, expected in ((4.0, False), (12.0, True)):  # a circle far to the left hides nothing; overlapping, it hides
        near = _object("circle", "blue", (x, 16.0), 6.0, 0.2)
        full_near = scene_lib.shape_mask(near.shape, near.center, near.radius, near.angle, size).astype(bool)
        share = (full_near & full_far).sum() / full_far.sum()
        assert (share >= scene_lib.MIN_OCCLUDED_FRACTION) == expected  # the case is what it claims
        assert scene_lib.partly_hidden([near, far], size) == [False, expected]
        assert scene_lib.partly_hidden([far, near], size) == [expected, False]  # order of the list, not of depth
        # The threshold is the fraction hidden: just above the share, the same overlap does not count.
        assert scene_lib.partly_hidden([near, far], size, min_fraction=min(1.0, share + 0.01)) == [False, False]


def test_the_written_maps_are_the_generators_and_found_from_image_paths(tmp_path):
    paths = write_builtin_dataset(str(tmp_path), num_train=6, num_heldout=2,
                                  formats=("csv", "dense_labels", "imagefolder"))
    assert dense_label_classes(paths) == (3, 9, 9)
    generator = SceneGenerator(image_size=64, seed=0)
    for split, count in (("train", 6), ("heldout", 2)):
        for index in range(count):
            image = tmp_path / "images" / split / f"{split}_{index:06d}.jpg"
            found = dense_label_path(str(image)).numpy().decode()
            assert found == str(tmp_path / "dense_labels" / split / f"{split}_{index:06d}.png")
            written = cv2.imread(found, cv2.IMREAD_UNCHANGED)[:, :, ::-1]
            scene = generator.scene(index, split)
            expected = scene_lib.dense_label_map(scene.objects, 64, generator.shapes, generator.colours)
            np.testing.assert_array_equal(written, expected)
            assert (expected[..., 0] > 0).sum() == sum(mask.sum() for mask in scene.masks)
    # An ImageFolder link of the same image finds the same map; any other path is left as it is.
    linked = next((tmp_path / "imagefolder" / "train").glob("*/train_000003.jpg"))
    assert dense_label_path(str(linked)).numpy().decode() == str(tmp_path / "dense_labels/train/train_000003.png")
    assert dense_label_path("/data/cats/cat.jpg").numpy() == b"/data/cats/cat.jpg"

"""The built-in dataset with another palette and a shape subset: every written file follows the generator's lists."""

import csv
import json
import os

from florence_keras.data import scene as scene_lib
from florence_keras.data.attribute_captions import write_attribute_captions
from florence_keras.data.builtin_dataset import ensure_builtin_dataset
from florence_keras.data.scene_generator import SceneGenerator

SHAPES = ("circle", "triangle", "ring", "cross", "diamond", "hexagon")


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_alt_palette_and_shape_subset_are_written_and_cached_apart_from_the_default(tmp_path):
    default = ensure_builtin_dataset(str(tmp_path), 6, 4, 32, 0, num_test=4)
    with open(os.path.join(tmp_path, "florence_builtin_settings.json")) as f:
        assert not {"palette", "shapes"} & set(json.load(f))  # the default's marker is today's: old data is reused
    stamp = os.path.getmtime(default["csv"]["train"])
    assert ensure_builtin_dataset(str(tmp_path), 6, 4, 32, 0, num_test=4, palette="default") == default
    assert os.path.getmtime(default["csv"]["train"]) == stamp

    paths = ensure_builtin_dataset(str(tmp_path), 30, 12, 32, 0, num_test=10, palette="alt", shapes=SHAPES)
    generator = SceneGenerator(image_size=32, seed=0, palette="alt", shapes=SHAPES)
    assert paths["class_names"] == list(SHAPES) and paths["colours"] == list(scene_lib.ALT_COLOURS)
    assert [tuple(pair) for pair in paths["heldout_combinations"]] == list(generator.heldout_combinations)
    with open(paths["info"]) as f:
        info = json.load(f)
    assert info["classes"] == list(SHAPES) and info["colour_rgb"]["maroon"] == list(scene_lib.ALT_COLOURS["maroon"])
    assert sorted(os.listdir(paths["imagefolder"]["train"])) == sorted(SHAPES)
    for split, count in (("train", 30), ("heldout", 12), ("test", 10)):
        rows = _rows(paths["attributes"][split])
        assert [(r["shape"], r["colour"]) for r in rows] == [
            (generator.scene(i, split).primary.shape, generator.scene(i, split).primary.colour) for i in range(count)]
        assert {r["shape"] for r in rows} <= set(SHAPES) and {r["colour"] for r in rows} <= set(generator.colours)
    with open(paths["csv"]["train"], newline="") as f:
        assert [r["caption"] for r in csv.DictReader(f)] == [generator.scene(i).caption for i in range(30)]
    # The attribute caption sets name the alt colours ("a maroon object", "an olive" would take "an").
    colour_csv = write_attribute_captions(paths["attributes"]["train"], ["colour"])["colour"]
    single = [r for r in _rows(paths["attributes"]["train"]) if r["count"] == "1"]
    expected = [("an " if r["colour"][0] in "aeiou" else "a ") + r["colour"] + " object" for r in single]
    assert [r["caption"] for r in _rows(colour_csv)] == expected

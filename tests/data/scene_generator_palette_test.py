"""`SceneGenerator(palette=..., shapes=...)`: another palette and a shape subset, held-out pairs that follow them."""

import re

import numpy as np
import pytest

from florence_keras.data import scene as scene_lib
from florence_keras.data.scene_generator import HELDOUT_COMBINATIONS
from florence_keras.data.scene_generator import SceneGenerator
from florence_keras.data.scene_generator import heldout_combinations

SIZE = 48
SUBSET = ("ring", "circle", "triangle", "cross", "diamond", "hexagon")  # given out of order on purpose


@pytest.fixture(scope="module")
def alt():
    return SceneGenerator(image_size=SIZE, seed=5, palette="alt", shapes=SUBSET)


def test_default_lists_give_the_default_heldout_pairs_and_scenes():
    assert heldout_combinations(scene_lib.SHAPES, scene_lib.COLOURS) == HELDOUT_COMBINATIONS
    default = SceneGenerator(image_size=SIZE, seed=3)
    spelled = SceneGenerator(image_size=SIZE, seed=3, palette=dict(scene_lib.COLOURS),
                             shapes=list(reversed(scene_lib.SHAPES)))
    assert spelled.shapes == scene_lib.SHAPES and spelled.heldout_combinations == HELDOUT_COMBINATIONS
    for split in ("train", "heldout"):
        a, b = default.scene(2, split), spelled.scene(2, split)
        np.testing.assert_array_equal(a.image, b.image)
        assert a.captions == b.captions and a.questions() == b.questions()


def test_heldout_pairs_of_any_lists_hold_one_colour_per_shape_and_keep_every_name_seen():
    # Hand-worked: 6 shapes, 8 colours, stride 3: colours 1, 4, 7, 10 % 8 = 2, 13 % 8 = 5, 16 % 8 = 0.
    colours = tuple(scene_lib.ALT_COLOURS)
    assert heldout_combinations(SUBSET[:6], colours) == tuple(
        (shape, colours[k]) for shape, k in zip(SUBSET, (1, 4, 7, 2, 5, 0)))
    for num_shapes in range(2, 9):
        for num_colours in range(2, 10):
            shapes, names = scene_lib.SHAPES[:num_shapes], [f"c{k}" for k in range(num_colours)]
            pairs = heldout_combinations(shapes, names)
            assert [shape for shape, _ in pairs] == list(shapes)
            held = [colour for _, colour in pairs]
            assert len(set(held)) == min(num_shapes, num_colours)  # no colour twice before every colour once
            seen = {(s, c) for s in shapes for c in names} - set(pairs)
            assert {s for s, _ in seen} == set(shapes) and {c for _, c in seen} == set(names)


def test_the_alt_palette_and_subset_are_what_the_scenes_show(alt):
    assert alt.shapes == tuple(s for s in scene_lib.SHAPES if s in SUBSET) and alt.class_names == list(alt.shapes)
    assert alt.colours == tuple(scene_lib.ALT_COLOURS) and not set(alt.colours) & set(scene_lib.COLOURS)
    heldout = set(alt.heldout_combinations)
    assert len(heldout) == 6 and {s for s, _ in heldout} == set(SUBSET)
    palette = np.array(list(scene_lib.ALT_COLOURS.values()), np.float64)
    seen, checked = set(), 0
    for index in range(120):
        scene = alt.scene(index)
        for obj, mask in zip(scene.objects, scene.masks):
            seen.add((obj.shape, obj.colour))
            # The drawn pixels' median is nearest the named colour's RGB (jitter, shading and noise included).
            median = np.median(scene.image[mask].astype(np.float64), axis=0)
            assert alt.colours[int(np.argmin(np.linalg.norm(palette - median, axis=1)))] == obj.colour
            checked += 1
        for qa in scene.questions():
            found = re.fullmatch(r"is there an? (\w+)\?", qa["question"])
            if found:
                assert found.group(1) in alt.shapes
    assert checked > 150 and not seen & heldout
    assert {s for s, _ in seen} == set(SUBSET) and {c for _, c in seen} == set(alt.colours)
    primaries = [alt.scene(i, "heldout").primary for i in range(40)]
    assert all((obj.shape, obj.colour) in heldout for obj in primaries)


def test_bad_palettes_and_shape_lists_are_refused():
    for palette in ("sepia", {"red": (1, 2, 3)}, {"light red": (1, 2, 3), "blue": (0, 0, 9)},
                    {"red": (1, 2, 300), "blue": (0, 0, 9)}, {"red": (1, 2), "blue": (0, 0, 9)}):
        with pytest.raises(ValueError, match="palette"):
            SceneGenerator(image_size=SIZE, palette=palette)
    for shapes in (["circle"], ["circle", "oval"], ["circle", "circle", "ring"], "circle"):
        with pytest.raises(ValueError, match="shapes"):
            SceneGenerator(image_size=SIZE, shapes=shapes)

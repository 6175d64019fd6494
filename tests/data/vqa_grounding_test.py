"""Attention targets for the built-in scenes: token positions of the named words and the masks' token shares."""

import numpy as np
import pytest

from florence_keras.data import scene as scene_lib
from florence_keras.data.scene_generator import SceneGenerator
from florence_keras.data.vqa_builtin import add_occlusion_questions
from florence_keras.data.vqa_builtin import add_place_questions
from florence_keras.data.vqa_builtin import builtin_scene
from florence_keras.data.vqa_grounding import MAX_NAMES
from florence_keras.data.vqa_grounding import builtin_grounding
from florence_keras.data.vqa_grounding import token_targets

_WORDS = {}


def _tokenize(texts):
    """A word-level tokenizer (start 1, end 2, '?' its own token), independent of the real one."""
    rows = []
    for text in texts:
        words = text.replace("?", " ?").split()
        ids = [1] + [_WORDS.setdefault(w, 10 + len(_WORDS)) for w in words] + [2]
        rows.append(ids + [2] * (16 - len(ids)))
    return np.asarray(rows, np.int32)


def _question_mask(ids):
    ids = np.asarray(ids)
    first_end = (ids == 2).argmax(axis=1)
    return (np.arange(ids.shape[1])[None] <= first_end[:, None]).astype(np.int32)


def test_token_targets_by_hand():
    mask = np.zeros((8, 8), bool)
    mask[0:4, 0:2] = True  # 8 pixels, all in the top-left quarter; at a 4x4 grid, cells (0, 0) and (1, 0)
    got = token_targets(mask, [2, 4])
    assert got.shape == (1 + 4 + 16,) and got[0] == 0
    np.testing.assert_allclose(got[1:5], [0.5, 0, 0, 0])
    fine = np.zeros(16)
    fine[[0, 4]] = 0.25
    np.testing.assert_allclose(got[5:], fine)
    assert got.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(token_targets(np.zeros((8, 8), bool), [2]), np.zeros(5))
    # A grid that does not divide the image: area shares still sum to the scale's share.
    assert token_targets(mask, [3]).sum() == pytest.approx(1.0)


def test_builtin_grounding_names_the_right_objects_at_the_right_tokens():
    generator = SceneGenerator(image_size=64, seed=3)
    records, expected = [], []
    for image_id in range(1, 41):
        scene = builtin_scene(generator, image_id, "train")
        for qa in scene.questions():
            records.append({"question_id": len(records) + 1, "image_id": image_id, "question": qa["question"],
                            "image_path": ""})
    records = add_occlusion_questions(add_place_questions(records, generator)[0], generator)[0]
    records.append({"image_id": 1, "question": "how many objects are there?"})
    got = builtin_grounding(records, generator, [2, 4], _tokenize, _question_mask)
    assert got["positions"].shape == (len(records), MAX_NAMES) and got["targets"].shape == (len(records), 2, 21)
    checked = set()
    for row, record in enumerate(records):
        question, objects = record["question"], builtin_scene(generator, record["image_id"]).objects
        visible = scene_lib.visible_masks(objects, 64)[0]
        words = question.replace("?", " ?").split()
        names = []  # (index of the named word in the question, the named objects), worked out independently
        if question.startswith("is there"):
            names = [(3, [o.shape == words[3] for o in objects])]
        elif question.startswith("what colour is the"):
            names = [(4, [o.shape == words[4] for o in objects])]
        elif question.startswith("what shape is the"):
            names = [(5, [o.colour == words[4] for o in objects])]
        elif " in front of " in question:
            names = [(3, [o.name == " ".join(words[2:4]) for o in objects]),
                     (9, [o.name == " ".join(words[8:10]) for o in objects])]
        elif question.startswith("where is the"):
            names = [(4, [o.name == " ".join(words[3:5]) for o in objects])]
        elif question.endswith(" partly hidden?"):
            names = [(3, [o.name == " ".join(words[2:4]) for o in objects])]
        elif question.startswith("which side"):
            names = [(5, [o.name == " ".join(words[4:6]) for o in objects])]
        names = [(word, chosen) for word, chosen in names if any(chosen)]
        for slot, (word, chosen) in enumerate(names):
            assert got["positions"][row, slot] == word + 1  # after the start token
            mask = np.logical_or.reduce([v for v, c in zip(visible, chosen) if c])
            np.testing.assert_allclose(got["targets"][row, slot], token_targets(mask, [2, 4]), atol=1e-6)
            checked.add(" ".join(words[:2] if words[-2] != "hidden" else words[-3:-1]))
        assert (got["positions"][row, len(names):] == -1).all(), question
        assert not got["targets"][row, len(names):].any()
    assert {"is there", "what colour", "what shape", "is the", "which side", "where is", "partly hidden"} <= checked
    assert got["grounded_questions"] == int((got["positions"][:, 0] >= 0).sum())
    assert got["names"] == int((got["positions"] >= 0).sum())

"""Training-only per-object questions for the built-in scenes: "where is the X?", "is the X partly hidden?"."""

import types

from florence_keras.data import scene as scene_lib
from florence_keras.data.scene_generator import SceneGenerator
from florence_keras.data.vqa_builtin import PLACES
from florence_keras.data.vqa_builtin import add_front_pair_questions
from florence_keras.data.vqa_builtin import add_occlusion_questions
from florence_keras.data.vqa_builtin import add_place_questions
from florence_keras.data.vqa_builtin import builtin_scene
from florence_keras.data.vqa_builtin import place_name


def test_place_name_by_hand():
    at = lambda x, y: types.SimpleNamespace(center=(x, y))  # noqa: E731
    assert place_name(at(5, 5), 60) == "top left"
    assert place_name(at(30, 5), 60) == "top"
    assert place_name(at(59, 5), 60) == "top right"
    assert place_name(at(30, 30), 60) == "center"
    assert place_name(at(19.9, 35), 60) == "left"
    assert place_name(at(20, 39.9), 60) == "center"  # a third starts at 20
    assert place_name(at(50, 59), 60) == "bottom right" and place_name(at(60, 60), 60) == "bottom right"
    assert place_name(at(30, 45), 60) == "bottom"


def _records(generator, images, per_image=2, keep=lambda qa: True):
    records = []
    for image_id in range(1, images + 1):
        kept = [qa for qa in builtin_scene(generator, image_id).questions() if keep(qa)]
        for k, qa in enumerate(kept[:per_image]):
            records.append({"question_id": image_id * 100 + k, "image_id": image_id, "question": qa["question"],
                            "answers": [qa["answer"]] * 10, "image_path": f"/data/{image_id}.jpg"})
    return records


def test_add_place_questions_one_per_uniquely_named_object():
    generator = SceneGenerator(image_size=64, seed=1)
    records = _records(generator, 30)
    out, added = add_place_questions(records, generator)
    assert out[:len(records)] == records and len(out) == len(records) + added
    expected = 0
    for image_id in range(1, 31):
        objects = builtin_scene(generator, image_id).objects
        names = [o.name for o in objects]
        unique = [o for o in objects if names.count(o.name) == 1]
        expected += len(unique)
        new = {r["question"]: r for r in out[len(records):] if r["image_id"] == image_id}
        assert set(new) == {f"where is the {o.name}?" for o in unique}
        for obj in unique:
            record = new[f"where is the {obj.name}?"]
            assert record["answers"] == [place_name(obj, 64)] * 10 and record["answers"][0] in PLACES
            assert record["image_path"] == f"/data/{image_id}.jpg" and record["answer_type"] == "other"
    assert added == expected > 30
    ids = [r["question_id"] for r in out]
    assert len(set(ids)) == len(ids)


def test_add_occlusion_questions_answer_every_in_front_question_from_the_two_objects():
    generator = SceneGenerator(image_size=64, seed=2)
    # Images with an "in front" question, which is asked only of two objects of which one hides the other.
    records = _records(generator, 120, per_image=1, keep=lambda qa: " in front of " in qa["question"])
    assert len(records) > 20
    out, added = add_occlusion_questions(records, generator)
    assert out[:len(records)] == records and len(out) == len(records) + added
    new = {(r["image_id"], r["question"]): r for r in out[len(records):]}
    assert len(new) == added and all(r["answer_type"] == "yes/no" for r in new.values())
    answers = {r["answers"][0] for r in new.values()}
    assert answers == {"yes", "no"}
    for record in records:
        objects = builtin_scene(generator, record["image_id"]).objects
        hidden = scene_lib.partly_hidden(objects, 64)
        for obj, flag in zip(objects, hidden):
            question = new.get((record["image_id"], f"is the {obj.name} partly hidden?"))
            assert question is None or question["answers"] == ["yes" if flag else "no"] * 10
        # "Is the X in front of the Y?" -> yes exactly when the Y is the one partly hidden.
        x, y = record["question"][len("is the "):-1].split(" in front of the ")
        x_hidden = new[(record["image_id"], f"is the {x} partly hidden?")]["answers"][0] == "yes"
        y_hidden = new[(record["image_id"], f"is the {y} partly hidden?")]["answers"][0] == "yes"
        assert x_hidden != y_hidden
        assert record["answers"][0] == ("yes" if y_hidden else "no")


def test_add_front_pair_questions_every_occluding_pair_both_ways_answered_by_depth():
    generator = SceneGenerator(image_size=64, seed=4)
    records = _records(generator, 60, per_image=20)  # every question of each scene, "in front" included
    out, added = add_front_pair_questions(records, generator)
    assert out[:len(records)] == records and len(out) == len(records) + added
    asked = {(r["image_id"], r["question"]) for r in records}
    new = {(r["image_id"], r["question"]): r for r in out[len(records):]}
    assert len(new) == added and not set(new) & asked  # never a question the image already has
    expected = 0
    for image_id in range(1, 61):
        objects = builtin_scene(generator, image_id).objects
        names = [o.name for o in objects]
        for a in objects:
            for b in objects:
                if a is b or names.count(a.name) > 1 or names.count(b.name) > 1:
                    continue
                near, far = sorted((a, b), key=lambda o: o.depth)
                key = (image_id, f"is the {a.name} in front of the {b.name}?")
                if not scene_lib.occlusion_visible(near, far, 64) or key in asked:
                    assert key not in new
                    continue
                expected += 1
                assert new[key]["answers"] == ["yes" if a is near else "no"] * 10
                assert new[key]["answer_type"] == "yes/no" and new[key]["question_type"] == "is the"
    assert added == expected > 20
    assert {r["answers"][0] for r in new.values()} == {"yes", "no"}



def test_builtin_occlusion_scenes_are_the_training_scenes_and_their_codes():
    import numpy as np
    import pytest

    from florence_keras.data.vqa_builtin import builtin_occlusion_scenes

    generator = SceneGenerator(image_size=64, seed=2)
    images, maps = builtin_occlusion_scenes(generator, 6)
    assert images.shape == (6, 64, 64, 3) and maps.shape == (6, 64, 64) and maps.dtype == np.uint8
    for index in range(6):
        scene = builtin_scene(generator, index + 1)  # the VQA split's image ids: scene index + 1
        np.testing.assert_array_equal(images[index], scene.image)
        expected = scene_lib.dense_label_map(scene.objects, 64, generator.shapes, generator.colours)[..., 0]
        np.testing.assert_array_equal(maps[index], expected)
        visible, _ = scene_lib.visible_masks(scene.objects, 64)
        for seen, hidden in zip(visible, scene_lib.partly_hidden(scene.objects, 64)):  # one code per object
            if seen.any():
                assert set(np.unique(maps[index][seen])) == {2 if hidden else 1}
    assert set(np.unique(maps)) <= {0, 1, 2} and (maps == 2).any() and (maps == 1).any()
    small_images, small_maps = builtin_occlusion_scenes(generator, 6, image_size=32)
    np.testing.assert_array_equal(small_maps, maps[:, 1::2, 1::2])  # nearest, pixel centres
    assert small_images.shape == (6, 32, 32, 3) and small_images.dtype == np.uint8
    assert np.abs(small_images.astype(float) - images.reshape(6, 32, 2, 32, 2, 3).mean((2, 4))).mean() < 8
    with pytest.raises(ValueError, match="count"):
        builtin_occlusion_scenes(generator, 0)

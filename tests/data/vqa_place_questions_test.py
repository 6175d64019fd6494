"""Training-only "where is the X?" questions for the built-in scenes."""

import types

from florence_keras.data.scene_generator import SceneGenerator
from florence_keras.data.vqa_builtin import PLACES
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


def test_add_place_questions_one_per_uniquely_named_object():
    generator = SceneGenerator(image_size=64, seed=1)
    records = []
    for image_id in range(1, 31):
        for k, qa in enumerate(builtin_scene(generator, image_id).questions()[:2]):
            records.append({"question_id": image_id * 100 + k, "image_id": image_id, "question": qa["question"],
                            "answers": [qa["answer"]] * 10, "image_path": f"/data/{image_id}.jpg"})
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

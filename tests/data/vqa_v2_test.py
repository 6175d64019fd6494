"""VQA v2 reading (template, bad records counted), soft targets and vocabulary (hand-worked), the tf.data stream,
and the built-in scenes' VQA files read back."""

import json

import cv2
import numpy as np
import pytest

from florence_keras.data.vqa_builtin import ensure_builtin_vqa_data
from florence_keras.data.vqa_dataset import vqa_dataset
from florence_keras.data.vqa_targets import answer_score
from florence_keras.data.vqa_targets import build_answer_vocabulary
from florence_keras.data.vqa_targets import soft_scores
from florence_keras.data.vqa_targets import vocabulary_answer_types
from florence_keras.data.vqa_v2 import load_vqa_images
from florence_keras.data.vqa_v2 import read_vqa_v2


def _answers(*texts):
    return [{"answer": t, "answer_confidence": "yes", "answer_id": i + 1} for i, t in enumerate(texts)]


def _write_set(root):
    image = np.full((20, 30, 3), 200, np.uint8)
    for image_id in (1, 2):
        cv2.imwrite(str(root / f"COCO_val2014_{image_id:012d}.jpg"), image)
    (root / "COCO_val2014_000000000003.jpg").write_bytes(b"not an image")
    questions = {"data_subtype": "val2014", "questions": [
        {"image_id": 1, "question": "What colour?", "question_id": 10},
        {"image_id": 1, "question": "How many?", "question_id": 11},
        {"image_id": 2, "question": "Is it?", "question_id": 20},
        {"image_id": 3, "question": "Corrupt image?", "question_id": 30},
        {"image_id": 4, "question": "Missing image?", "question_id": 40},
        {"image_id": 2, "question": "No annotation?", "question_id": 50},
        {"image_id": 2, "question": "", "question_id": 60},
        {"image_id": 2, "question": "Bad answers?", "question_id": 70},
    ]}
    annotations = {"annotations": [
        {"question_id": 10, "image_id": 1, "answer_type": "other", "question_type": "what color",
         "answers": _answers(*(["Red"] * 6 + ["dark red"] * 4))},
        {"question_id": 11, "image_id": 1, "answer_type": "number", "question_type": "how many",
         "answers": _answers(*(["two"] * 3 + ["2"] * 5 + ["3"] * 2))},
        {"question_id": 20, "image_id": 2, "answer_type": "yes/no", "question_type": "is it",
         "answers": _answers(*(["yes"] * 10))},
        {"question_id": 30, "image_id": 3, "answer_type": "yes/no", "question_type": "is it", "answers": _answers("no")},
        {"question_id": 40, "image_id": 4, "answer_type": "yes/no", "question_type": "is it", "answers": _answers("no")},
        {"question_id": 60, "image_id": 2, "answer_type": "yes/no", "question_type": "is it", "answers": _answers("no")},
        {"question_id": 70, "image_id": 2, "answer_type": "yes/no", "question_type": "is it", "answers": [{"x": 1}]},
    ]}
    (root / "q.json").write_text(json.dumps(questions))
    (root / "a.json").write_text(json.dumps(annotations))
    return str(root / "q.json"), str(root / "a.json")


def test_read_and_load_skip_and_count_bad_records(tmp_path):
    questions, annotations = _write_set(tmp_path)
    data = read_vqa_v2(questions, annotations, image_dir=str(tmp_path))
    assert [r["question_id"] for r in data["records"]] == [10, 11, 20, 30, 40]
    assert data["records"][0]["image_path"].endswith("COCO_val2014_000000000001.jpg")
    loaded = load_vqa_images(data["records"], 16, skip_counter=data["skip_counter"])
    assert [r["question_id"] for r in loaded["records"]] == [10, 11, 20]
    assert loaded["images"].shape == (2, 16, 16, 3) and loaded["images"].dtype == np.uint8
    assert loaded["image_index"].tolist() == [0, 0, 1]  # image 1 decoded once for its two questions
    reasons = dict(data["skip_counter"].reasons)
    assert reasons.pop("no_annotation") == 1 and reasons.pop("bad_record") == 2 and reasons.pop("missing") == 1
    assert sum(reasons.values()) == 1  # the corrupt file, under the decoder's own reason name
    assert data["skip_counter"].count == 5
    # Questions only (a test split): every well-formed question is kept, no answers.
    only = read_vqa_v2(questions, None, image_dir=str(tmp_path))
    assert len(only["records"]) == 7 and only["annotations"] is None and "answers" not in only["records"][0]


def test_template_and_split_override(tmp_path):
    questions, annotations = _write_set(tmp_path)
    data = read_vqa_v2(questions, annotations, image_dir="/x", image_template="{split}/{image_id}.png", split="s")
    assert data["records"][0]["image_path"] == "/x/s/1.png"
    with pytest.raises(ValueError, match="image_template"):
        read_vqa_v2(questions, annotations, image_template="{nope}")
    with pytest.raises(ValueError, match="does not exist"):
        read_vqa_v2(str(tmp_path / "none.json"))


def test_soft_scores_and_vocabulary_by_hand():
    assert [answer_score(k) for k in range(7)] == [0.0, 0.3, 0.6, 0.9, 1.0, 1.0, 1.0]
    lists = [["Red"] * 6 + ["dark red"] * 4, ["two"] * 3 + ["2"] * 5 + ["3"] * 2, ["yes"] * 10, ["A dog", "dog."]]
    # Normalised counts: red 6, dark red 4, 2 8 (two -> 2), 3 2, yes 10, dog 2 -> by count, ties alphabetical.
    assert build_answer_vocabulary(lists, 10) == ["yes", "2", "red", "dark red", "3", "dog"]
    vocabulary = build_answer_vocabulary(lists, 3)
    assert vocabulary == ["yes", "2", "red"]
    scores = soft_scores(lists, vocabulary)
    np.testing.assert_allclose(scores, [[0, 0, 1.0], [0, 1.0, 0], [1.0, 0, 0], [0, 0, 0]])
    full = soft_scores([["3"] * 2 + ["2"] * 8, ["dog"] * 3 + ["cat"] * 7, ["dog"]], ["3", "dog", "2"])
    np.testing.assert_allclose(full, [[0.6, 0, 1.0], [0, 0.9, 0], [0, 0.3, 0]])


def test_vocabulary_answer_types_by_majority_of_normalised_answers():
    lists = [["Yes", "yes."] + ["no"] * 8, ["two"] * 6 + ["yes"] * 4, ["2", "red"], ["Red"], ["blue"]]
    types = ["yes/no", "number", "other", "other", "unknown"]
    # Votes (normalised answers): yes 2 yes/no + 4 number; no 8 yes/no; 2 6 number + 1 other; red 2 other;
    # blue only under an unknown type; green never seen.
    assert vocabulary_answer_types(lists, types, ["yes", "no", "2", "red", "blue", "green"]) == [
        "number", "yes/no", "number", "other", "other", "other"]
    # A tie goes to the first type in ("yes/no", "number", "other").
    assert vocabulary_answer_types([["yes"], ["yes"]], ["other", "yes/no"], ["yes"]) == ["yes/no"]


def test_stream_batches():
    images = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    index = np.array([1, 0, 1], np.int32)
    ids = np.arange(3 * 5, dtype=np.int32).reshape(3, 5)
    scores = np.eye(3, dtype=np.float32)
    batches = list(vqa_dataset(images, index, ids, scores, 2, lambda x: x / 255.0, repeat=False,
                               drop_remainder=False))
    first = batches[0]
    assert set(first) == {"images", "token_ids", "answer_scores", "labels"}
    np.testing.assert_allclose(first["images"].numpy(), images[[1, 0]] / 255.0, rtol=1e-6)
    assert first["token_ids"].numpy().tolist() == ids[:2].tolist() and first["labels"].numpy().tolist() == [0, 1]
    assert batches[1]["labels"].numpy().tolist() == [2]
    train = next(iter(vqa_dataset(images, index, ids, scores, 2, lambda x: x / 255.0, seed=1)))
    assert train["images"].shape == (2, 4, 4, 3)


def test_builtin_scenes_as_vqa_v2(tmp_path):
    paths = ensure_builtin_vqa_data(str(tmp_path), 6, 2, image_size=32, seed=0)
    data = read_vqa_v2(paths["train"]["questions"], paths["train"]["annotations"], image_dir=paths["image_dir"],
                       image_template=paths["image_template"])
    loaded = load_vqa_images(data["records"], 32, skip_counter=data["skip_counter"])
    assert data["skip_counter"].count == 0 and len(loaded["images"]) == 6
    assert {r["answer_type"] for r in loaded["records"]} <= {"yes/no", "number", "other"}
    assert all(len(r["answers"]) == 10 for r in loaded["records"])
    assert ensure_builtin_vqa_data(str(tmp_path), 6, 2, image_size=32, seed=0) == paths  # reused

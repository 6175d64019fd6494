"""answer_questions / evaluate_vqa: batched answers equal the model's own predict, scored officially."""

import keras
import numpy as np
import pytest

from florence_keras.evaluation.vqa_evaluation import evaluate_vqa
from florence_keras.models import FlorenceVQA
from tests.model_fixtures import tiny_clip


def test_evaluate_matches_predict_and_official_accuracy():
    keras.utils.set_random_seed(0)
    clip = tiny_clip()
    vqa = FlorenceVQA(clip.backbone, clip.preprocessor, answer_vocabulary=["yes", "no", "2"], question_length=10,
                      fusion_dim=16, fusion_layers=1, fusion_heads=2)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    image_index = np.array([0, 1, 1], np.int32)
    questions = ["is there a circle?", "how many objects?", "is it red?"]
    token_ids = vqa.tokenize_questions(questions).numpy()
    records = [{"question_id": k + 1} for k in range(3)]
    predicted = vqa.predict(images[image_index], questions)["answers"]
    annotations = [{"question_id": k + 1, "question_type": "t", "answer_type": "yes/no",
                    "answers": [predicted[k]] * 10 if k < 2 else ["zebra"] * 10} for k in range(3)]
    scores = evaluate_vqa(vqa, images, image_index, token_ids, records, annotations, batch_size=2)
    assert [p["answer"] for p in scores["predictions"]] == predicted
    assert scores["overall"] == pytest.approx(66.67) and scores["num_questions"] == 3
    assert scores["scores"].shape == (3,) and ((scores["scores"] > 0) & (scores["scores"] < 1)).all()

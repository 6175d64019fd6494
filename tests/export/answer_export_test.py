"""answer: a tiny FlorenceVQA exported, served by a TensorFlow(-Text)-only process, vs Keras predict."""

import base64
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from florence_keras.export import SavedModelExporter
from florence_keras.export.answer_signature import answer_signature
from florence_keras.models import FlorenceVQA
from tests.model_fixtures import tiny_clip

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.path.join(REPO, "tests", "export", "serving_client.py")
VOCABULARY = ["yes", "no", "2", "3", "red", "circle", "left"]
TYPES = {"yes": "yes/no", "no": "yes/no", "2": "number", "3": "number"}


def _vqa(image_scales=(1,), image_detail=False, image_summary="mean", text_summary_dropout=0.0,
         question_prior=False, dense_label_classes=0):
    keras.utils.set_random_seed(0)
    clip = tiny_clip()
    return FlorenceVQA(clip.backbone, clip.preprocessor, answer_vocabulary=VOCABULARY, question_length=12,
                       fusion_dim=16, fusion_layers=1, fusion_heads=2, image_scales=image_scales,
                       image_detail=image_detail, image_summary=image_summary,
                       text_summary_dropout=text_summary_dropout, question_prior=question_prior,
                       answer_types=[TYPES.get(a, "other") for a in VOCABULARY],
                       dense_label_classes=dense_label_classes, dense_label_channels=8)


def _b64(data):
    return {"b64": [base64.b64encode(data).decode()], "shape": []}


@pytest.mark.slow  # a TF-only serving subprocess (~30 s idle): runs in `make test-all`
# One scale; multi-scale tokens (a resize in the graph); and the recipe's default, the finer stage folded in, the
# encoder's pooled features as the image stream's first token and the question's summary dropped in training (a
# layer with a random generator that serving must leave out); with the question-only branch and the dense label
# decoder's pooled probabilities in every token (BatchNorm in inference mode in the graph).
@pytest.mark.parametrize("image_scales,image_detail,image_summary,text_summary_dropout,question_prior,dense",
                         [((1,), False, "mean", 0.0, False, 0), ((1, 2), False, "mean", 0.0, False, 0),
                          ((1, 2), True, "pooled", 0.3, False, 0), ((1, 2), True, "pooled", 0.0, True, 3)])
def test_served_answer_equals_keras_predict(tmp_path, image_scales, image_detail, image_summary,
                                            text_summary_dropout, question_prior, dense):
    vqa = _vqa(image_scales, image_detail, image_summary, text_summary_dropout, question_prior, dense)
    export_dir = SavedModelExporter([answer_signature(vqa)], serving_default="answer").export(
        str(tmp_path / "model"), version=1)
    rng = np.random.default_rng(0)
    images = {"png_rgb": rng.integers(0, 256, (37, 53, 3)).astype(np.uint8),
              "jpeg_gray": (np.mgrid[0:20, 0:14][0] * 12).astype(np.uint8)[..., None]}
    encoded = {"png_rgb": tf.io.encode_png(images["png_rgb"]).numpy(),
               "jpeg_gray": tf.io.encode_jpeg(images["jpeg_gray"], quality=90).numpy()}
    questions = ["how many objects are there?", "What colour is the square?", "is there a star?"]
    plan, expected = [], {}
    for name, data in encoded.items():
        image = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
        for k, question in enumerate(questions):
            call_id = f"{name}_{k}"
            plan.append({"id": call_id, "signature": "answer",
                         "inputs": {"image_bytes": _b64(data), "question": _b64(question.encode())}})
            expected[call_id] = vqa.predict(image, question)
    plan.append({"id": "garbage", "signature": "answer",
                 "inputs": {"image_bytes": _b64(b"not an image"), "question": _b64(b"is it?")}})
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    completed = subprocess.run(
        [sys.executable, CLIENT, f"--export_dir={export_dir}", f"--plan={tmp_path / 'plan.json'}", f"--out={out}",
         "--tensorflow_text"], env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["modules"] == []  # the serving process loaded no Keras / florence_keras
    assert results["signatures"]["answer"]["outputs"] == {"answer": {"dtype": "string", "shape": []},
                                                          "score": {"dtype": "float32", "shape": []}}
    assert results["calls"]["garbage"]["error"] == "InvalidArgumentError"
    assert "not_an_image" in results["calls"]["garbage"]["message"]
    worst = 0.0
    for call_id, want in expected.items():
        served = np.load(out / f"{call_id}.npz")
        assert served["answer"].item().decode() == want["answers"], call_id
        worst = max(worst, abs(float(served["score"]) - float(want["scores"])))
    print(f"answer signature vs Keras predict: answers equal, max score difference {worst:.2e}")
    assert worst < 1e-5


def test_signature_needs_a_preprocessor():
    vqa = _vqa()
    vqa.preprocessor = None
    with pytest.raises(ValueError, match="preprocessor"):
        answer_signature(vqa)

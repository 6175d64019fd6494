"""detect: a tiny FlorenceDetector exported, served by a TensorFlow-only process, vs Keras predict."""

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
from florence_keras.export.detect_signature import detect_signature
from florence_keras.models.florence_detector import FlorenceDetector
from tests.model_fixtures import tiny_clip

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.path.join(REPO, "tests", "export", "serving_client.py")


def _detector(**kwargs):
    keras.utils.set_random_seed(0)
    clip = tiny_clip()
    # score_threshold 0: a random head scores ~0.005, and every kept box is compared.
    return FlorenceDetector(clip.backbone, ["circle", "square", "star"], preprocessor=clip.preprocessor,
                            image_size=64, fpn_channels=8, num_head_blocks=0, num_tower_convs=0,
                            score_threshold=0.0, max_detections=20, **kwargs)


@pytest.mark.parametrize("kwargs", [{}, {"class_agnostic": True, "region_classifier": "crops"}],
                         ids=["supervised", "zero_shot_crops"])
def test_served_detections_equal_keras_predict(tmp_path, kwargs):
    detector = _detector(**kwargs)
    export_dir = SavedModelExporter([detect_signature(detector)], serving_default="detect").export(
        str(tmp_path / "model"), version=1)
    rng = np.random.default_rng(0)
    images = {"png_wide": tf.io.encode_png(rng.integers(0, 256, (37, 53, 3)).astype(np.uint8)).numpy(),
              "jpeg_gray_tall": tf.io.encode_jpeg((np.mgrid[0:90, 0:30][0] * 2).astype(np.uint8)[..., None]).numpy()}
    plan = [{"id": name, "signature": "detect",
             "inputs": {"image_bytes": {"b64": [base64.b64encode(data).decode()], "shape": []}}}
            for name, data in images.items()]
    plan.append({"id": "garbage", "signature": "detect",
                 "inputs": {"image_bytes": {"b64": [base64.b64encode(b"not an image").decode()], "shape": []}}})
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    completed = subprocess.run(
        [sys.executable, CLIENT, f"--export_dir={export_dir}", f"--plan={tmp_path / 'plan.json'}", f"--out={out}"],
        env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["modules"] == []  # the serving process loaded no Keras / florence_keras
    assert results["calls"]["garbage"]["error"] == "InvalidArgumentError"
    worst = 0.0
    for name, data in images.items():
        image = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
        expected = detector.predict(image)
        served = np.load(out / f"{name}.npz", allow_pickle=True)
        count = int(expected["num_detections"])
        assert int(served["num_detections"]) == count > 0
        np.testing.assert_array_equal(served["classes"], expected["labels"])
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in served["class_names"][:count]]
        assert names == [detector.class_names[k] for k in expected["labels"][:count]]
        assert np.all(served["boxes"][:count, 2] <= image.shape[1]) and np.all(served["boxes"][:count, 3] <= image.shape[0])
        worst = max(worst, float(np.max(np.abs(served["boxes"] - expected["boxes"]))),
                    float(np.max(np.abs(served["scores"] - expected["confidence"]))))
    print(f"detect signature vs Keras predict: max abs difference {worst:.3g}")
    assert worst < 1e-4


def test_signature_needs_an_image_converter():
    detector = _detector()
    detector.preprocessor = None
    with pytest.raises(ValueError, match="image converter"):
        detect_signature(detector)

"""estimate_depth: a tiny FlorenceDepthEstimator exported, served by a TensorFlow-only process, vs Keras predict."""

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
from florence_keras.export.depth_signature import estimate_depth_signature
from florence_keras.models import FlorenceDepthEstimator
from tests.model_fixtures import tiny_clip

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.path.join(REPO, "tests", "export", "serving_client.py")


def _images():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3)).astype(np.uint8)
    gray = (np.mgrid[0:20, 0:14][0] * 12).astype(np.uint8)[..., None]
    rgba = rng.integers(0, 256, (64, 40, 4)).astype(np.uint8)
    return {"png_rgb": tf.io.encode_png(rgb).numpy(), "jpeg_gray": tf.io.encode_jpeg(gray, quality=90).numpy(),
            "png_rgba": tf.io.encode_png(rgba).numpy()}


def test_served_depth_equals_keras_predict(tmp_path):
    keras.utils.set_random_seed(0)
    clip = tiny_clip()
    estimator = FlorenceDepthEstimator(clip.backbone, clip.preprocessor, decoder_channels=8)
    export_dir = SavedModelExporter([estimate_depth_signature(estimator)], serving_default="estimate_depth").export(
        str(tmp_path / "model"), version=1)
    encoded = _images()
    plan = [{"id": name, "signature": "estimate_depth",
             "inputs": {"image_bytes": {"b64": [base64.b64encode(data).decode()], "shape": []}}}
            for name, data in encoded.items()]
    plan.append({"id": "garbage", "signature": "estimate_depth",
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
    assert results["signatures"]["estimate_depth"]["outputs"]["depth"] == {"dtype": "float32", "shape": [None, None]}
    assert results["calls"]["garbage"]["error"] == "InvalidArgumentError"
    assert "not_an_image" in results["calls"]["garbage"]["message"]
    for name, data in encoded.items():
        image = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
        expected = estimator.predict(image)
        served = np.load(out / f"{name}.npz")["depth"]
        assert served.shape == image.shape[:2]
        np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-5, err_msg=name)


def test_signature_needs_an_image_converter():
    clip = tiny_clip()
    with pytest.raises(ValueError, match="image converter"):
        estimate_depth_signature(FlorenceDepthEstimator(clip.backbone, None, decoder_channels=8))

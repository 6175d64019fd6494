"""caption: a tiny FlorenceCaptioner exported, served by a TensorFlow-only process, vs Keras greedy generation."""

import base64
import json
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from florence_keras.export import SavedModelExporter
from florence_keras.export.caption_signature import caption_signature
from florence_keras.models.caption_vocabulary import build_vocabulary
from florence_keras.models.florence_captioner import FlorenceCaptioner
from tests.model_fixtures import tiny_clip

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.path.join(REPO, "tests", "export", "serving_client.py")


def test_served_caption_equals_keras_greedy(tmp_path):
    keras.utils.set_random_seed(0)
    clip = tiny_clip()
    vocabulary = build_vocabulary(["a red circle, on the left.", "two objects: a blue star above a green ring"])
    captioner = FlorenceCaptioner(clip.backbone, clip.preprocessor, vocabulary=vocabulary, max_length=10,
                                  hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32)
    export_dir = SavedModelExporter([caption_signature(captioner)], serving_default="caption").export(
        str(tmp_path / "model"), version=1)
    rng = np.random.default_rng(0)
    raw = {"png_rgb": rng.integers(0, 256, (37, 53, 3)).astype(np.uint8),
           "png_gray": (np.mgrid[0:20, 0:14][0] * 12).astype(np.uint8)[..., None],
           "png_flat": np.full((32, 32, 3), 200, np.uint8)}
    encoded = {name: tf.io.encode_png(image).numpy() for name, image in raw.items()}
    plan = [{"id": name, "signature": "caption",
             "inputs": {"image_bytes": {"b64": [base64.b64encode(data).decode()], "shape": []}}}
            for name, data in encoded.items()]
    plan.append({"id": "garbage", "signature": "caption",
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
    assert results["signatures"]["caption"]["outputs"]["caption"] == {"dtype": "string", "shape": []}
    assert results["calls"]["garbage"]["error"] == "InvalidArgumentError"
    assert "not_an_image" in results["calls"]["garbage"]["message"]
    captions = set()
    for name, image in raw.items():
        rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
        expected = captioner.generate(rgb, num_beams=1)
        served = np.load(out / f"{name}.npz")
        assert served["caption"].item().decode() == expected  # the same string, exactly
        expected_ids = np.asarray(captioner.generate_ids(captioner.caption_inputs(rgb[None]), num_beams=1))[0]
        np.testing.assert_array_equal(served["token_ids"], expected_ids)
        captions.add(expected)
    assert len(captions) >= 1

"""encode_video / classify_video: a tiny video classifier exported, served by a TensorFlow-only process, vs Keras."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from florence_keras.export import SavedModelExporter
from florence_keras.export.video_signatures import video_signatures
from florence_keras.models.florence_video_classifier import FlorenceVideoClassifier
from tests.model_fixtures import save_tiny_preset

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.path.join(REPO, "tests", "export", "serving_client.py")
CLASSES = ["moving_down", "moving_left", "moving_right", "moving_up"]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    preset = save_tiny_preset(tmp_path_factory.mktemp("tiny") / "preset", image_size=32)
    return FlorenceVideoClassifier.from_image_preset(preset, class_names=CLASSES, num_frames=4, window=2)


@pytest.mark.slow  # a TensorFlow-only serving subprocess: ~1 min on 2 busy cores
def test_served_video_signatures_equal_keras(task, tmp_path):
    export_dir = SavedModelExporter(video_signatures(task, top_k=2), serving_default="classify_video").export(
        str(tmp_path / "model"), version=1)
    rng = np.random.default_rng(0)
    clips = {"same_size": rng.integers(0, 256, (2, 4, 32, 32, 3)).astype(np.uint8),
             "other_size": rng.integers(0, 256, (1, 4, 40, 48, 3)).astype(np.uint8)}
    plan = []
    for name, videos in clips.items():
        np.save(tmp_path / f"{name}.npy", videos)
        for signature in ("encode_video", "classify_video"):
            plan.append({"id": f"{signature}_{name}", "signature": signature,
                         "inputs": {"videos": {"npy": str(tmp_path / f"{name}.npy")}}})
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    completed = subprocess.run(
        [sys.executable, CLIENT, f"--export_dir={export_dir}", f"--plan={tmp_path / 'plan.json'}", f"--out={out}"],
        env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["modules"] == []  # the serving process loaded no Keras / florence_keras
    for name, videos in clips.items():
        embeddings = np.load(out / f"encode_video_{name}.npz")["embeddings"]
        np.testing.assert_allclose(embeddings, task.encode_videos(videos), atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1.0, atol=1e-5)
        served = np.load(out / f"classify_video_{name}.npz", allow_pickle=True)
        expected = task.predict(videos)
        np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
        top = [[c.decode() if isinstance(c, bytes) else str(c) for c in row] for row in served["top_k_classes"]]
        assert top == [[CLASSES[i] for i in np.argsort(-row)[:2]] for row in expected]

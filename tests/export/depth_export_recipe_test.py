"""export_saved_model.py on a depth preset: `estimate_depth` is the default signature, served by a TF-only process
equal to the preset's own `predict`."""

import base64
import json
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from florence_keras import export
from florence_keras.models import FlorenceDepthEstimator

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.path.join(REPO, "tests", "export", "serving_client.py")


def test_depth_preset_exports_estimate_depth(tiny_clip, tmp_path):
    keras.utils.set_random_seed(0)
    preset = str(tmp_path / "preset")
    FlorenceDepthEstimator(tiny_clip.backbone, tiny_clip.preprocessor, decoder_channels=8).save_to_preset(preset)
    # The recipe in its own process: absl flags are process-global (export_saved_model_recipe_test imports it).
    exported = subprocess.run(
        [sys.executable, os.path.join(REPO, "recipes", "export_saved_model.py"), f"--preset={preset}",
         f"--output={tmp_path / 'serving'}"],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""),
        capture_output=True, text=True, timeout=900)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert "Serving the depth estimator (32px): estimate_depth." in exported.stdout
    export_dir = str(tmp_path / "serving" / "1")
    assert sorted(export.signature_names(export_dir)) == ["estimate_depth", "serving_default"]

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (45, 70, 3)).astype(np.uint8)
    plan = [{"id": name, "signature": name,
             "inputs": {"image_bytes": {"b64": [base64.b64encode(tf.io.encode_png(image).numpy()).decode()],
                                        "shape": []}}}
            for name in ("estimate_depth", "serving_default")]
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, CLIENT, f"--export_dir={export_dir}", f"--plan={tmp_path / 'plan.json'}", f"--out={out}"],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=""), capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["modules"] == []  # the serving process loaded no Keras / florence_keras
    expected = FlorenceDepthEstimator.from_preset(preset).predict(image)
    for name in ("estimate_depth", "serving_default"):
        served = np.load(out / f"{name}.npz")["depth"]
        assert served.shape == image.shape[:2]
        np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-5, err_msg=name)

"""The main job in tiny mode: built-in data -> UniCL training -> held-out table -> a loadable preset."""

import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(model_dir):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "recipes", "pretrain_unicl.py"), "--tiny",
         f"--model_dir={model_dir}"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )


def test_main_job_tiny_and_resume(tmp_path):
    first = _run(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Held-out built-in split" in first.stdout
    assert "Trained 4 steps" in first.stdout and "final loss" in first.stdout
    assert "zero-shot top-1" in first.stdout and "text to image R@1" in first.stdout
    scores = json.loads((tmp_path / "heldout_scores.json").read_text())
    assert 0.0 <= scores["zero_shot"]["top1"] <= 1.0
    metadata = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert metadata["florence_training"]["steps"] == 4
    assert "pretrain_unicl.py --tiny" in metadata["florence_training"]["command"]

    from florence_keras.models import FlorenceCLIP

    clip = FlorenceCLIP.from_preset(str(tmp_path / "preset"))
    emb = clip.encode_texts(["a red circle"]).numpy()
    np.testing.assert_allclose(np.linalg.norm(emb), 1.0, atol=1e-5)

    # Rerunning the same command resumes: the run is complete, nothing is retrained.
    second = _run(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "already holds a finished run of 4 steps: nothing to train" in second.stdout
    assert "Stage stage1 from step 0" not in second.stderr

"""train_depth.py and eval_depth.py end to end on a tiny preset and a few built-in scenes."""

import importlib.util
import json
import os

import matplotlib.image
import numpy as np
import pytest

from florence_keras.models import FlorenceDepthEstimator

_spec = importlib.util.spec_from_file_location(
    "eval_recipe_data", os.path.join(os.path.dirname(__file__), "eval_recipe_data.py")
)
eval_recipe_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_recipe_data)

# The recipes these tests run as subprocesses, named by path so that Bazel's generated BUILD gives the test them
# (tools/generate_build.py: a test's dependencies include the first-party files it names by path).
RECIPES = ("recipes/train_depth.py", "recipes/eval_depth.py", "recipes/prepare_motorcycle_depth.py")


def test_the_recipes_are_where_the_tests_run_them():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert all(os.path.isfile(os.path.join(root, path)) for path in RECIPES)


def test_train_then_eval_depth(tmp_path, tiny_preset_dir):
    model_dir = tmp_path / "m"
    stdout = eval_recipe_data.run_recipe(
        "train_depth", f"--preset={tiny_preset_dir}", f"--model_dir={model_dir}", "--image_size=32", "--steps=3",
        "--batch_size=4", "--builtin_train=8", "--builtin_heldout=5", "--decoder_channels=8", "--warmup_steps=1",
        timeout=900,  # ~1 min on idle cores; a shared machine can take 4 (a timeout is not what this test checks)
    )
    assert "8 training pairs at 32px" in stdout
    summary = json.loads((model_dir / "train_depth.json").read_text())
    assert summary["train"]["step"] == 3 and summary["skipped_pairs"] == 0
    metadata = json.loads((model_dir / "preset" / "metadata.json").read_text())["florence_training"]
    assert metadata["task"] == "depth" and "train_depth.py" in metadata["command"]
    estimator = FlorenceDepthEstimator.from_preset(str(model_dir / "preset"))
    assert estimator.image_size == 32 and estimator.decoder_channels == 8

    # Held-out pairs plus one whose image is missing: scored on the good ones, the bad one counted.
    heldout = model_dir / "data" / "depth_heldout.csv"
    rows = heldout.read_text().splitlines()
    pairs_csv = tmp_path / "pairs.csv"
    pairs_csv.write_text("\n".join(
        ["image,depth"] + [",".join(str(model_dir / "data" / p) for p in row.split(",")) for row in rows[1:]]
        + [f"{tmp_path}/nope.png,{model_dir / 'data' / rows[1].split(',')[1]}"]) + "\n")
    output = tmp_path / "eval"
    stdout = eval_recipe_data.run_recipe("eval_depth", f"--preset={model_dir / 'preset'}", f"--data={pairs_csv}",
                                         f"--output_dir={output}", timeout=900)
    results = json.loads((output / "results.json").read_text())
    assert results["pairs"] == 5 and results["skipped_pairs"] == 1 and results["skipped_reasons"] == {"missing": 1}
    for key in ("metrics", "metrics_median_scaled"):
        assert set(results[key]) >= {"abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3"}
        assert 0.0 <= results[key]["delta1"] <= results[key]["delta2"] <= results[key]["delta3"] <= 1.0
    assert results["metrics"]["median_scaling"] is False and results["metrics_median_scaled"]["median_scaling"]
    assert "| no median scaling |" in (output / "results.md").read_text() and "| median scaling |" in stdout
    picture = matplotlib.image.imread(output / "depth_examples.png")
    assert picture.ndim == 3 and picture.shape[1] > picture.shape[0] / 2 and np.ptp(picture) > 0


def test_prepare_motorcycle_depth(tmp_path):
    from skimage import data

    eval_recipe_data.run_recipe("prepare_motorcycle_depth", f"--output_dir={tmp_path}", timeout=900)
    depth = np.load(tmp_path / "depth.npy", allow_pickle=False)
    _, _, disparity = data.stereo_motorcycle()
    row, col = 250, 370
    assert np.isfinite(disparity[row, col])
    # Z = B f / (d + doffs): 193.001 mm x 994.978 px / (d + 31.086 px), in metres.
    assert depth[row, col] == pytest.approx(193.001 * 994.978 / (float(disparity[row, col]) + 31.086) / 1000.0,
                                            rel=1e-6)
    assert (depth[~np.isfinite(disparity)] == 0).all()
    assert (tmp_path / "pairs.csv").read_text() == "image,depth\nleft.png,depth.npy\n"

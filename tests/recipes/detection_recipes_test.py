"""train_detection.py and eval_detection.py end to end on a tiny preset and a few built-in scenes."""

import importlib.util
import json
import os

import matplotlib.image
import pytest

from florence_keras.models import FlorenceDetector

_spec = importlib.util.spec_from_file_location(
    "eval_recipe_data", os.path.join(os.path.dirname(__file__), "eval_recipe_data.py"))
eval_recipe_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_recipe_data)

# Named by path so that Bazel's generated BUILD gives the test them.
RECIPES = ("recipes/train_detection.py", "recipes/eval_detection.py")
STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def test_the_recipes_are_where_the_tests_run_them():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert all(os.path.isfile(os.path.join(root, path)) for path in RECIPES)


@pytest.mark.slow  # two recipe processes (train, eval): ~1 min on idle cores, several under load
def test_train_then_eval_detection_zero_shot(tmp_path, tiny_preset_dir):
    model_dir = tmp_path / "m"
    stdout = eval_recipe_data.run_recipe(
        "train_detection", f"--preset={tiny_preset_dir}", f"--model_dir={model_dir}", "--image_size=64",
        "--steps=2", "--batch_size=4", "--builtin_train=8", "--builtin_heldout=4", "--fpn_channels=8",
        "--num_tower_convs=1", "--warmup_steps=1", "--class_agnostic", "--exclude_classes=star,hexagon")
    assert "8 classes at 64px" in stdout
    summary = json.loads((model_dir / "train_detection.json").read_text())
    assert summary["train"]["step"] == 2 and summary["settings"]["freeze_backbone"]  # implied by --class_agnostic
    assert summary["train_images"] + summary["skipped_reasons"].get("excluded class", 0) == 8
    detector = FlorenceDetector.from_preset(str(model_dir / "preset"))
    assert detector.class_agnostic and detector.image_size == 64 and detector.fpn_channels == 8

    output = tmp_path / "eval"
    eval_recipe_data.run_recipe("eval_detection", f"--preset={model_dir / 'preset'}", f"--output_dir={output}",
                                "--zero_shot", "--class_names=star,hexagon", "--num_plot_images=3")
    results = json.loads((output / "results.json").read_text())
    assert results["mode"] == "zero_shot" and results["class_names"] == ["star", "hexagon"]
    assert results["category_ids"] == [4, 8] and results["images"] == 4
    for name in STATS:
        assert results[name] == -1.0 or 0.0 <= results[name] <= 1.0
    detections = json.loads((output / "detections.json").read_text())
    assert all(set(d) == {"image_id", "category_id", "bbox", "score"} and d["category_id"] in (4, 8)
               for d in detections)
    assert "| AP | AP50 |" in (output / "results.md").read_text()
    assert matplotlib.image.imread(output / "detections.png").shape[-1] in (3, 4)

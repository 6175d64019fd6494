import importlib.util
import json
import os

import matplotlib.image
import numpy as np

_spec = importlib.util.spec_from_file_location(
    "eval_recipe_data", os.path.join(os.path.dirname(__file__), "eval_recipe_data.py")
)
eval_recipe_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_recipe_data)


def test_linear_probe_recipe_tiny_mode(tmp_path):
    train = eval_recipe_data.write_image_folder(tmp_path / "train", per_class=6, seed=1)
    test = eval_recipe_data.write_image_folder(tmp_path / "test", per_class=3, seed=2)
    output = tmp_path / "out"
    stdout = eval_recipe_data.run_recipe(
        "linear_probe", "--tiny", f"--data={train}", f"--test_data={test}", f"--output_dir={output}",
        "--c_min=0.01", "--c_max=100", "--refine_steps=1", "--batch_size=6",
    )
    assert "best C" in stdout
    with open(output / "linear_probe.json", encoding="utf-8") as file:
        results = json.load(file)
    assert results["num_train"] + results["num_val"] == 18 and results["num_test"] == 9
    assert results["coarse_grid"] == [0.01, 1.0, 100.0]
    assert len(results["sweep"]) == 5  # 3 coarse + 2 refined
    assert results["best_C"] in [trial["C"] for trial in results["sweep"]]
    assert results["class_names"] == ["blue_square", "green_square", "red_square"]
    matrix = np.array(results["confusion_matrix"])
    assert matrix.sum() == 9 and results["top1"] == np.trace(matrix) / 9
    assert matplotlib.image.imread(output / "confusion_matrix.png").ndim == 3
    assert len(os.listdir(output / "feature_cache")) == 2  # train and test features

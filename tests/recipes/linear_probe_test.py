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


def test_linear_probe_recipe_on_image_folders(tmp_path, tiny_preset_dir):
    train = eval_recipe_data.write_image_folder(tmp_path / "train", per_class=6, seed=1)
    test = eval_recipe_data.write_image_folder(tmp_path / "test", per_class=3, seed=2)
    output = tmp_path / "out"
    stdout = eval_recipe_data.run_recipe(
        "linear_probe", f"--preset={tiny_preset_dir}", f"--data={train}", f"--test_data={test}",
        f"--output_dir={output}", "--c_min=0.01", "--c_max=100", "--refine_steps=1", "--batch_size=6",
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


def test_linear_probe_on_builtin_data_trains_on_train_and_tests_on_heldout(tmp_path, tiny_preset_dir):
    output = tmp_path / "out"
    eval_recipe_data.run_recipe(
        "linear_probe", f"--preset={tiny_preset_dir}", "--data=builtin", "--builtin_train=40",
        "--builtin_heldout=16", f"--builtin_dir={tmp_path / 'builtin'}", f"--output_dir={output}", "--c_min=0.1",
        "--c_max=10", "--refine_steps=0", "--batch_size=8",
    )
    with open(output / "linear_probe.json", encoding="utf-8") as file:
        results = json.load(file)
    # The built-in train split is fitted (train + validation), its held-out split is the test set.
    assert results["num_train"] + results["num_val"] == 40 and results["num_test"] == 16
    assert os.path.isdir(tmp_path / "builtin" / "imagefolder" / "heldout")

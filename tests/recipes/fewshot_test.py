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


def test_fewshot_recipe_on_image_folder(tmp_path, tiny_preset_dir):
    data = eval_recipe_data.write_image_folder(tmp_path / "data", per_class=6)
    output = tmp_path / "out"
    stdout = eval_recipe_data.run_recipe(
        "fewshot", f"--preset={tiny_preset_dir}", f"--data={data}", f"--output_dir={output}", "--n_way=3",
        "--n_query=2", "--shots=1,3,5", "--episodes=4", "--batch_size=6",
    )
    assert "accuracy (%)" in stdout
    with open(output / "fewshot.json", encoding="utf-8") as file:
        results = json.load(file)
    assert [r["k_shot"] for r in results["results"]] == [1, 3]
    assert [s["k_shot"] for s in results["skipped"]] == [5]  # 5 + 2 > 6 images per class
    for r in results["results"]:
        accuracies = np.array(results["episode_accuracies"][str(r["k_shot"])])
        assert accuracies.shape == (4,)
        assert np.isclose(r["mean_accuracy"], accuracies.mean())
        assert np.isclose(r["ci95"], 1.96 * accuracies.std() / 2.0)
    assert matplotlib.image.imread(output / "accuracy_vs_shots.png").ndim == 3
    assert "## Skipped" in (output / "fewshot.md").read_text(encoding="utf-8")

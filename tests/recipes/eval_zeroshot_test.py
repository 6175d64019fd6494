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


def test_zero_shot_recipe_on_image_folder(tmp_path, tiny_preset_dir):
    data = eval_recipe_data.write_image_folder(tmp_path / "data", per_class=3, bad_file=True)
    output = tmp_path / "out"
    templates = tmp_path / "templates.txt"
    templates.write_text("a photo of a {}.\n# a comment\na {} in the picture.\n", encoding="utf-8")
    stdout = eval_recipe_data.run_recipe(
        "eval_zeroshot", f"--preset={tiny_preset_dir}", f"--data={data}", f"--output_dir={output}",
        f"--templates={templates}", "--batch_size=4",
    )
    assert "top-1 (%)" in stdout
    with open(output / "zeroshot.json", encoding="utf-8") as file:
        results = json.load(file)
    assert results["num_examples"] == 9 and results["num_classes"] == 3
    assert results["num_skipped"] == 1  # broken.png is skipped and counted
    assert results["class_names"] == ["blue square", "green square", "red square"]
    assert results["templates"] == ["a photo of a {}.", "a {} in the picture."]
    matrix = np.array(results["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == 9
    assert results["top1"] == np.trace(matrix) / 9  # the reported accuracy is the matrix's diagonal
    assert results["top5"] == 1.0
    assert "## Per class" in (output / "zeroshot.md").read_text(encoding="utf-8")
    assert matplotlib.image.imread(output / "confusion_matrix.png").ndim == 3
    assert len(os.listdir(output / "feature_cache")) == 2  # image features + prompt embeddings

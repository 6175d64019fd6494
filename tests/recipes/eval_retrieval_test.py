import importlib.util
import json
import os

import matplotlib.image

_spec = importlib.util.spec_from_file_location(
    "eval_recipe_data", os.path.join(os.path.dirname(__file__), "eval_recipe_data.py")
)
eval_recipe_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_recipe_data)


def test_retrieval_recipe_on_coco_captions(tmp_path, tiny_preset_dir):
    captions, num_images, num_captions = eval_recipe_data.write_coco_captions(tmp_path / "coco", per_class=3)
    output = tmp_path / "out"
    stdout = eval_recipe_data.run_recipe(
        "eval_retrieval", f"--preset={tiny_preset_dir}", f"--data={captions}", "--data_format=coco",
        f"--output_dir={output}", "--batch_size=5", "--grid_queries=2", "--grid_k=3",
    )
    assert "I→T R@1 (%)" in stdout
    with open(output / "retrieval.json", encoding="utf-8") as file:
        results = json.load(file)
    assert results["num_images"] == num_images and results["num_texts"] == num_captions
    for direction in ("image_to_text", "text_to_image"):
        recalls = [results[f"{direction}_R@{k}"] for k in (1, 5, 10)]
        assert recalls == sorted(recalls) and 0.0 <= recalls[0] and recalls[-1] <= 1.0
    # With 9 images, every caption's image is within the top 10 images.
    assert results["text_to_image_R@10"] == 1.0
    assert results["rsum"] == sum(results[f"{d}_R@{k}"] for d in ("image_to_text", "text_to_image") for k in (1, 5, 10))
    for grid in ("text_to_image.png", "image_to_text.png"):
        assert matplotlib.image.imread(output / grid).ndim == 3
    assert "## Recall" in (output / "retrieval.md").read_text(encoding="utf-8")


def test_retrieval_on_builtin_heldout_captions(tmp_path, tiny_preset_dir):
    output = tmp_path / "out"
    eval_recipe_data.run_recipe(
        "eval_retrieval", f"--preset={tiny_preset_dir}", "--data=builtin", "--builtin_train=8",
        "--builtin_heldout=12", f"--output_dir={output}", "--batch_size=6",
    )
    with open(output / "retrieval.json", encoding="utf-8") as file:
        results = json.load(file)
    assert results["num_images"] == 12  # the built-in held-out split, one caption per image (COCO form)
    assert os.path.isdir(output / "builtin_data")  # the default --builtin_dir

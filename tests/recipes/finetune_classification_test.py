"""The fine-tuning recipe in tiny mode: both heads, real training, held-out scores, report files."""

import importlib.util
import json
import math
import os
import pathlib

import matplotlib.image
import numpy as np

from florence_keras.models import FlorenceImageClassifier

_spec = importlib.util.spec_from_file_location(
    "eval_recipe_data", os.path.join(os.path.dirname(__file__), "eval_recipe_data.py")
)
eval_recipe_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_recipe_data)


def _results(output):
    with open(output / "finetune_classification.json", encoding="utf-8") as file:
        return json.load(file)


def test_unicl_head_lifts_heldout_accuracy_above_zero_shot(tmp_path, tiny_preset_dir):
    # An easy task (three colour classes); the test images are other draws than the training images.
    train = eval_recipe_data.write_image_folder(tmp_path / "train", per_class=8, seed=1)
    test = eval_recipe_data.write_image_folder(tmp_path / "test", per_class=4, seed=2)
    output = tmp_path / "out"
    stdout = eval_recipe_data.run_recipe(
        "finetune_classification", "--tiny", f"--preset={tiny_preset_dir}", f"--data={train}", f"--test_data={test}",
        "--steps=16", "--batch_size=12", "--layer_decay=0.8", f"--output_dir={output}",
    )
    assert "fine-tuned (unicl head)" in stdout
    results = _results(output)
    before, after = results["before"], results["after"]
    assert results["class_names"] == ["blue_square", "green_square", "red_square"]
    assert after["num_examples"] == before["num_examples"] == 12
    assert after["top1"] >= 0.9 and after["top1"] > before["top1"]
    assert results["train"]["step"] == 16
    # Layer decay: the CoSwin stem (deepest) gets 0.8 ** (sum(depths) + 1), the projections 1.0.
    assert math.isclose(results["lr_multipliers"]["min"], 0.8**4) and results["lr_multipliers"]["max"] == 1.0
    matrix = np.array(after["confusion_matrix"])
    assert matrix.sum() == 12 and np.trace(matrix) / 12 == after["top1"]
    assert matplotlib.image.imread(output / "confusion_matrix.png").ndim == 3
    assert (output / "finetune_classification.md").read_text().count("## ") == 4
    # The fine-tuned model is a FlorenceImageClassifier preset; its metadata was written by the run that
    # trained and scored it.
    metadata = json.loads((output / "preset" / "metadata.json").read_text())["finetune_classification"]
    assert metadata["head"] == "unicl" and "finetune_classification.py --tiny" in metadata["command"]
    assert json.loads((output / "preset" / "metadata.json").read_text())["heldout_top1"] == after["top1"]
    classifier = FlorenceImageClassifier.from_preset(str(output / "preset"))
    assert classifier.class_names == ["blue square", "green square", "red square"]
    assert classifier.head_type == "unicl" and classifier.head.is_set()
    images = [matplotlib.image.imread(path) * 255 for path in sorted((pathlib.Path(test) / "red_square").iterdir())]
    assert classifier.classify(images)["class_names"][:, 0].tolist().count("red square") >= 3


def test_linear_head_on_builtin_data(tmp_path, tiny_preset_dir):
    output = tmp_path / "out"
    stdout = eval_recipe_data.run_recipe(
        "finetune_classification", "--tiny", f"--preset={tiny_preset_dir}", "--head=linear", "--data=builtin",
        f"--output_dir={output}",
    )
    assert "fine-tuned (linear head)" in stdout
    results = _results(output)
    assert results["class_names"] == sorted(["circle", "square", "triangle", "star", "ring", "cross", "diamond",
                                             "hexagon"])
    assert results["test_data"].endswith(os.path.join("imagefolder", "heldout"))
    assert results["after"]["num_examples"] == 48 and results["train"]["step"] == 24
    # The head starts at zero (loss log 8); training lowered the loss.
    assert results["train"]["loss"] < math.log(8)
    classifier = FlorenceImageClassifier.from_preset(str(output / "preset"))
    assert classifier.head_type == "linear" and classifier.num_classes == 8
    assert np.abs(np.asarray(classifier.head.kernel)).max() > 0  # trained from zero
    assert not (output / "preset" / "linear_head.npz").exists()
    assert (output / "checkpoints").is_dir() and (output / "confusion_matrix.png").exists()

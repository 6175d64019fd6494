"""pretrain_fusion.py end to end on a tiny preset: a captions CSV with a bad row, then train_vqa.py from its preset."""

import importlib.util
import json
import os
import re

import cv2
import numpy as np
import pytest

from florence_keras.models.florence_fusion_pretrainer import FlorenceFusionPretrainer
from florence_keras.models.florence_vqa import FlorenceVQA

_spec = importlib.util.spec_from_file_location(
    "eval_recipe_data", os.path.join(os.path.dirname(__file__), "eval_recipe_data.py")
)
eval_recipe_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_recipe_data)

RECIPES = ("recipes/pretrain_fusion.py", "recipes/train_vqa.py")
FUSION = ("--fusion_dim=16", "--fusion_layers=1", "--fusion_heads=2")


def test_the_recipes_are_where_the_tests_run_them():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert all(os.path.isfile(os.path.join(root, path)) for path in RECIPES)


@pytest.mark.slow
def test_pretrain_fusion_then_vqa(tmp_path, tiny_preset_dir):
    rng = np.random.default_rng(0)
    rows = ["filepath,caption"]
    for i in range(6):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
        rows += [f"{i}.png,a photo number {i}", f"{i}.png,another caption {i}"]
    rows.append("missing.png,an image that is not there")
    (tmp_path / "captions.csv").write_text("\n".join(rows) + "\n")
    model_dir = tmp_path / "pre"
    stdout = eval_recipe_data.run_recipe(
        "pretrain_fusion", f"--train_data={tmp_path / 'captions.csv'}", f"--preset={tiny_preset_dir}",
        f"--model_dir={model_dir}", "--image_size=32", "--steps=2", "--batch_size=4", "--text_length=12",
        "--warmup_steps=1", *FUSION, timeout=400)
    assert "6 training images, 12 captions at 32px" in stdout
    summary = json.loads((model_dir / "pretrain_fusion.json").read_text())
    assert summary["train"]["step"] == 2 and summary["skipped_reasons"] == {"missing": 1}
    assert set(summary["probe"]) >= {"itm", "mlm", "itm_accuracy"}
    pretrained = FlorenceFusionPretrainer.from_preset(str(model_dir / "preset"))
    assert pretrained.text_length == 12 and pretrained.fusion_dim == 16

    # train_vqa.py --fusion_preset: the pretrained fusion (its settings replace the fusion flags' defaults) and
    # backbone are the start (a step at lr 1e-12 changes nothing).
    vqa_dir = tmp_path / "vqa"
    stdout = eval_recipe_data.run_recipe(
        "train_vqa", f"--fusion_preset={model_dir / 'preset'}", f"--model_dir={vqa_dir}", "--image_size=32",
        "--steps=1", "--batch_size=4", "--builtin_train=6", "--builtin_heldout=3", "--question_length=12",
        "--warmup_steps=0", "--learning_rate=1e-12", timeout=400)
    # The longest of these questions needs 14 tokens: at the flag's 12 some are cut, and the recipe says how many.
    assert re.search(r"Note: [1-9]\d* of \d+ training questions are longer than 12 tokens", stdout), stdout[-2000:]
    vqa = FlorenceVQA.from_preset(str(vqa_dir / "preset"))
    assert (vqa.fusion_dim, vqa.fusion_layers, vqa.fusion_heads) == (16, 1, 2)
    assert vqa.image_summary == "mean"  # the pretrained fusion's image stream starts with the mean token
    for name in ("fusion", "backbone"):
        for a, b in zip(getattr(vqa, name).get_weights(), getattr(pretrained, name).get_weights()):
            np.testing.assert_allclose(a, b, atol=1e-7)
    # --preset gives the backbone, --fusion_preset the fusion.
    eval_recipe_data.run_recipe(
        "train_vqa", f"--preset={tiny_preset_dir}", f"--fusion_preset={model_dir / 'preset'}",
        f"--model_dir={tmp_path / 'vqa2'}", "--image_size=32", "--steps=1", "--batch_size=4", "--builtin_train=6",
        "--builtin_heldout=3", "--question_length=12", "--warmup_steps=0", "--learning_rate=1e-12",
        f"--builtin_dir={vqa_dir / 'data'}", timeout=400)
    vqa2 = FlorenceVQA.from_preset(str(tmp_path / "vqa2" / "preset"))
    for a, b in zip(vqa2.fusion.get_weights(), pretrained.fusion.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-7)

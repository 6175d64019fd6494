"""train_captioning.py and eval_captioning.py end to end on a tiny preset and a small COCO captions file."""

import importlib.util
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from florence_keras.models.florence_captioner import FlorenceCaptioner

_spec = importlib.util.spec_from_file_location(
    "eval_recipe_data", os.path.join(os.path.dirname(__file__), "eval_recipe_data.py")
)
eval_recipe_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_recipe_data)

# Named by path so that Bazel's generated BUILD gives the test them.
RECIPES = ("recipes/train_captioning.py", "recipes/eval_captioning.py")


def _coco_file(directory, missing=False):
    os.makedirs(directory / "images", exist_ok=True)
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(6):
        (directory / "images" / f"{i}.png").write_bytes(
            tf.io.encode_png(rng.integers(0, 256, (24, 40, 3)).astype(np.uint8)).numpy())
        images.append({"id": 100 + i, "file_name": f"images/{i}.png"})
        annotations += [{"image_id": 100 + i, "caption": f"a {c} shape, on the left."} for c in ("red", "blue")]
    if missing:
        images.append({"id": 999, "file_name": "images/nope.png"})
        annotations.append({"image_id": 999, "caption": "a red shape"})
    path = directory / ("captions_missing.json" if missing else "captions.json")
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def test_the_recipes_exist():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert all(os.path.isfile(os.path.join(root, path)) for path in RECIPES)


@pytest.mark.slow  # two recipe subprocesses (~1 min idle); runs in `make test-all`
def test_train_then_eval_captioning(tmp_path, tiny_preset_dir):
    model_dir = tmp_path / "m"
    stdout = eval_recipe_data.run_recipe(
        "train_captioning", f"--train_data={_coco_file(tmp_path)}", f"--preset={tiny_preset_dir}",
        f"--model_dir={model_dir}", "--image_size=32", "--steps=3", "--batch_size=4", "--warmup_steps=1",
        "--hidden_dim=16", "--num_layers=1", "--num_heads=2", "--intermediate_dim=32", "--min_word_count=1",
        "--max_length=10", timeout=900)
    assert "6 training images, 12 captions at 32px; vocabulary of 13 tokens" in stdout
    summary = json.loads((model_dir / "train_captioning.json").read_text())
    assert summary["train"]["step"] == 3 and summary["skipped"] == 0
    metadata = json.loads((model_dir / "preset" / "metadata.json").read_text())["florence_training"]
    assert metadata["task"] == "captioning" and "train_captioning.py" in metadata["command"]
    captioner = FlorenceCaptioner.from_preset(str(model_dir / "preset"))
    assert captioner.image_size == 32 and captioner.max_length == 10 and "shape" in captioner.vocabulary

    output = tmp_path / "eval"
    stdout = eval_recipe_data.run_recipe(
        "eval_captioning", f"--preset={model_dir / 'preset'}", f"--data={_coco_file(tmp_path, missing=True)}",
        f"--output_dir={output}", "--num_beams=2", timeout=900)
    results = json.loads((output / "results.json").read_text())
    assert results["images"] == 6 and results["skipped"] == 1 and results["skipped_reasons"] == {"missing": 1}
    assert results["decoding"] == "beam 2, length penalty 0"
    for name in ("BLEU-4", "ROUGE-L", "CIDEr"):
        assert results[name] >= 0.0
    assert (results["METEOR"] is None) != results["java"]
    predictions = json.loads((output / "captions.json").read_text())
    assert [p["image_id"] for p in predictions] == list(range(100, 106))
    assert all(isinstance(p["caption"], str) for p in predictions)
    assert "| BLEU-4 | METEOR | ROUGE-L | CIDEr |" in (output / "results.md").read_text()
    assert "| BLEU-4 |" in stdout

"""The export recipe in tiny mode: a stock-ops export that loads where TF-Text is absent.

The recipe runs in subprocesses: importing it defines its absl flags process-wide, and another test file's recipe
(run in the same pytest-xdist worker) may define flags of the same names.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from florence_keras import export

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(REPO, "recipes", "export_saved_model.py")
CLIENT = os.path.join(REPO, "tests", "export", "serving_client.py")
TEXTS = ["a photo of a cat.", "A Red CIRCLE"]

# Imports the recipe as `recipe` in a fresh process; the test's code follows (its arguments: sys.argv[1:]).
_PRELUDE = f"""
import importlib.util
import sys
spec = importlib.util.spec_from_file_location("export_saved_model_recipe", {RECIPE!r})
recipe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipe)
"""


def _run(command, timeout=600):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, *command], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _in_recipe_process(code, *args):
    """Runs `code` after importing the recipe, in a subprocess; returns its stdout (asserting it succeeded)."""
    completed = _run(["-c", _PRELUDE + code, *args])
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-6000:]
    return completed.stdout


def _last_json_line(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def stock_export(tiny_clip, tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    preset = str(root / "preset")
    tiny_clip.save_to_preset(preset)
    classes = root / "classes.txt"
    classes.write_text("# zero-shot classes\ncat\n\ndog\nrocket\n", encoding="utf-8")
    rest = str(root / "rest.md")
    completed = _run([
        RECIPE, f"--preset={preset}", f"--output={root / 'serving'}", f"--class_names={classes}",
        "--templates=a photo of a {}.", "--top_k=2", "--stock_ops_only", f"--rest_examples={rest}",
    ])
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-6000:]
    export_dir = str(root / "serving" / "1")
    summary = {"export_dir": export_dir, "signatures": export.signature_names(export_dir)}
    return {"root": root, "summary": summary, "rest": rest, "clip": tiny_clip}


def test_layout_tf_serving_watches(stock_export):
    summary = stock_export["summary"]
    export_dir = summary["export_dir"]
    assert sorted(os.listdir(stock_export["root"] / "serving")) == ["1"]  # version 1; no staging leftovers
    assert os.path.isfile(os.path.join(export_dir, "saved_model.pb"))
    assert os.path.isdir(os.path.join(export_dir, "variables"))
    assert os.path.isfile(os.path.join(export_dir, "assets.extra", "tf_serving_warmup_requests"))
    assert summary["signatures"] == [
        "classify", "encode_image_bytes", "encode_images", "encode_token_ids", "serving_default"
    ]


def test_rest_examples_come_from_running_the_export(stock_export):
    with open(stock_export["rest"], encoding="utf-8") as file:
        text = file.read()
    for name in ("encode_image_bytes", "encode_images", "encode_token_ids", "classify"):
        assert f"### `{name}`" in text
    assert "/v1/models/florence:predict" in text
    blocks = [block.split("\n", 1)[1] for block in text.split("```json")[1:]]
    responses = [json.loads(block.split("```")[0]) for block in blocks]
    assert len(responses) == 4
    assert all(len(response["predictions"]) >= 1 for response in responses)
    assert set(responses[-1]["predictions"][0]) == {"class_names", "class_ids", "scores"}


def test_stock_export_runs_without_tensorflow_text(stock_export, tmp_path):
    clip = stock_export["clip"]
    export_dir = stock_export["summary"]["export_dir"]
    ids = [[int(i) for i in np.asarray(clip.preprocessor.tokenizer(t))] for t in TEXTS]
    width = max(len(row) for row in ids)
    token_ids = np.array([row + [0] * (width - len(row)) for row in ids], np.int32)
    np.save(tmp_path / "ids.npy", token_ids)
    np.save(tmp_path / "lengths.npy", np.array([len(row) for row in ids], np.int32))
    plan = [{"id": "token_ids", "signature": "encode_token_ids",
             "inputs": {"token_ids": {"npy": str(tmp_path / "ids.npy")},
                        "lengths": {"npy": str(tmp_path / "lengths.npy")}}}]
    for index, request in enumerate(export.read_warmup_requests(export_dir)):
        inputs = {}
        for name, value in export.request_inputs(request).items():
            path = tmp_path / f"warmup{index}_{name}.npy"
            if value.dtype == object:
                import base64
                inputs[name] = {"b64": [base64.b64encode(v).decode() for v in value.reshape(-1)],
                                "shape": list(value.shape)}
            else:
                np.save(path, value)
                inputs[name] = {"npy": str(path)}
        plan.append({"id": f"warmup_{index}", "signature": request.model_spec.signature_name, "inputs": inputs})
    (tmp_path / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, CLIENT, f"--export_dir={export_dir}", f"--plan={tmp_path / 'plan.json'}", f"--out={out}",
         f"--scan_dir={export_dir}"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=""),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert "load_error" not in results, results.get("load_error")
    assert sorted(results["signatures"]) == sorted(
        ["serving_default", "encode_image_bytes", "encode_images", "encode_token_ids", "classify"]
    )
    assert all(call == {"ok": True} for call in results["calls"].values()), results["calls"]
    assert all(not ops for ops in results["unregistered_ops"].values()), results["unregistered_ops"]
    with np.load(out / "token_ids.npz") as outputs:
        served = outputs["embeddings"]
    expected = np.asarray(clip.encode_texts(TEXTS))
    assert np.abs(served - expected).max() < 1e-4


def test_existing_version_is_not_overwritten(stock_export):
    root = stock_export["root"]
    with pytest.raises(FileExistsError, match="exists"):
        export.SavedModelExporter(
            export.clip_signatures(stock_export["clip"]), export.CLIP_SERVING_DEFAULT
        ).export(str(root / "serving"), version=1)


def test_usage_errors():
    stdout = _in_recipe_process("""
import json
from absl import app
errors = []
for argv in (["export_saved_model", "--output=/tmp/unused"], ["export_saved_model", "stray"]):
    try:
        recipe.main(argv)
    except app.UsageError as error:
        errors.append(str(error))
    else:
        errors.append(None)
print(json.dumps(errors))
""")
    missing_preset, stray = _last_json_line(stdout)
    assert missing_preset is not None and "--preset is required" in missing_preset
    assert stray is not None and "Unexpected arguments" in stray


def test_read_class_names_and_templates(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("  cat \n# comment\n\nhot dog\n", encoding="utf-8")
    only_comment = tmp_path / "comment.txt"
    only_comment.write_text("# only a comment\n", encoding="utf-8")
    stdout = _in_recipe_process("""
import json
try:
    recipe.read_class_names(sys.argv[2])
    error = None
except ValueError as caught:
    error = str(caught)
print(json.dumps({"names": recipe.read_class_names(sys.argv[1]), "error": error,
                  "plain": recipe.resolve_templates("a photo of a {}."),
                  "imagenet7": len(recipe.resolve_templates("imagenet7"))}))
""", str(path), str(only_comment))
    results = _last_json_line(stdout)
    assert results["names"] == ["cat", "hot dog"]
    assert results["error"] is not None and "no class names" in results["error"]
    assert results["plain"] == ["a photo of a {}."]
    assert results["imagenet7"] == 7


@pytest.mark.parametrize("head", ["unicl", "linear"])
def test_classifier_preset_serves_its_own_classify(tiny_clip, tmp_path, head):
    """A FlorenceImageClassifier preset (what the fine-tuning recipe writes) exports its `classify` as the
    default signature; the served top-k equals the Task's own `classify` on the same decoded images."""
    import tensorflow as tf

    from florence_keras.models import FlorenceImageClassifier
    from florence_keras.export.serving_examples import example_image_bytes

    classifier = FlorenceImageClassifier.from_clip(tiny_clip, ["cat", "dog", "rocket"], head=head,
                                                   templates=["a photo of a {}."])
    if head == "linear":  # a head that is not all zero, so the ranking means something
        rng = np.random.default_rng(0)
        classifier.head.kernel.assign(rng.normal(size=classifier.head.kernel.shape).astype("float32"))
    preset = str(tmp_path / "preset")
    classifier.save_to_preset(preset)
    _in_recipe_process("""
assert recipe.preset_task_name(sys.argv[1]) == "FlorenceImageClassifier", recipe.preset_task_name(sys.argv[1])
recipe.main(["export_saved_model", f"--preset={sys.argv[1]}", f"--output={sys.argv[2]}", "--top_k=2",
             "--stock_ops_only"])
""", preset, str(tmp_path / "serving"))
    export_dir = str(tmp_path / "serving" / "1")
    expected_names = ["classify", "serving_default"] + (
        ["encode_image_bytes", "encode_images", "encode_token_ids"] if head == "unicl" else [])
    assert sorted(export.signature_names(export_dir)) == sorted(expected_names)
    served = tf.saved_model.load(export_dir).signatures["serving_default"]
    image_bytes = example_image_bytes()
    outputs = served(image_bytes=tf.constant(image_bytes))
    expected = FlorenceImageClassifier.from_preset(preset).classify(
        [tf.io.decode_image(b, channels=3).numpy() for b in image_bytes], top_k=2)
    np.testing.assert_array_equal(outputs["class_ids"].numpy(), expected["class_ids"])
    assert outputs["class_names"].numpy().astype(str).tolist() == expected["class_names"].tolist()
    np.testing.assert_allclose(outputs["scores"].numpy(), expected["scores"], atol=1e-5)

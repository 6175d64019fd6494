"""train_video.py (classify and unicl), eval_video.py and eval_video_retrieval.py end to end on a tiny preset."""

import importlib.util
import json
import os

import pytest

_spec = importlib.util.spec_from_file_location(
    "eval_recipe_data", os.path.join(os.path.dirname(__file__), "eval_recipe_data.py")
)
eval_recipe_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_recipe_data)

# Named by path so that Bazel's generated BUILD gives the test the recipes it runs.
RECIPES = ("recipes/train_video.py", "recipes/eval_video.py", "recipes/eval_video_retrieval.py")


def test_the_recipes_are_where_the_tests_run_them():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert all(os.path.isfile(os.path.join(root, path)) for path in RECIPES)


@pytest.mark.slow
def test_train_eval_and_retrieval(tmp_path, tiny_preset_dir):
    model_dir, data_dir = tmp_path / "m", tmp_path / "data"
    common = [f"--builtin_dir={data_dir}", "--builtin_train=12", "--builtin_heldout=6", "--num_frames=4",
              "--image_size=32", "--steps=2", "--batch_size=4", "--warmup_steps=1"]
    stdout = eval_recipe_data.run_recipe("train_video", f"--preset={tiny_preset_dir}", f"--model_dir={model_dir}",
                                         *common, timeout=600)
    assert "12 training clips" in stdout
    summary = json.loads((model_dir / "train_video.json").read_text())
    assert summary["train"]["step"] == 2 and summary["skipped_clips"] == 0
    classes = summary["class_names"]
    assert classes == sorted(classes)
    # Flips stay on only when every side-naming class has its mirror among the classes.
    assert summary["flip_effective"] == (("moving_left" in classes) == ("moving_right" in classes))

    heldout = data_dir / "video" / "heldout"
    import shutil

    for folder in heldout.iterdir():  # so few clips may miss a class in training: score the trained classes
        if folder.name not in classes:
            shutil.rmtree(folder)
    num_heldout = sum(1 for folder in heldout.iterdir() for _ in folder.iterdir())
    (heldout / summary["class_names"][0] / "broken.mp4").write_bytes(b"not a video")
    output = tmp_path / "eval"
    eval_recipe_data.run_recipe("eval_video", f"--preset={model_dir / 'preset'}", f"--data={heldout}",
                                "--views=2x3", f"--output_dir={output}", timeout=600)
    results = json.loads((output / "results.json").read_text())
    assert results["views"] == "2x3" and results["num_examples"] == num_heldout and results["skipped_clips"] == 1
    assert 0.0 <= results["top1"] <= results["top5"] <= 1.0 and (output / "confusion.png").is_file()
    assert len(results["per_class_accuracy"]) == len(summary["class_names"])

    unicl_dir = tmp_path / "u"
    eval_recipe_data.run_recipe("train_video", f"--preset={model_dir / 'preset'}", f"--model_dir={unicl_dir}",
                                "--objective=unicl", f"--train_data={data_dir / 'video_captions_train.csv'}",
                                *common, timeout=600)
    for preset in (tiny_preset_dir, unicl_dir / "preset"):
        out = tmp_path / f"retrieval_{os.path.basename(os.path.dirname(str(preset)))}"
        eval_recipe_data.run_recipe("eval_video_retrieval", f"--preset={preset}",
                                    f"--data={data_dir / 'video_captions_heldout.csv'}", "--num_frames=4",
                                    "--image_size=32", f"--output_dir={out}", timeout=600)
        retrieval = json.loads((out / "results.json").read_text())
        # the clips of the classes removed above are listed in the CSV but gone: skipped and counted
        assert retrieval["num_videos"] == num_heldout and retrieval["skipped_clips"] == 6 - num_heldout
        assert 1 <= retrieval["num_captions"] <= num_heldout
        assert 0.0 <= retrieval["text_to_video_R@1"] <= retrieval["text_to_video_R@5"] <= 1.0

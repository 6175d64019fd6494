"""The main job on another palette and shape subset: `--builtin_palette` / `--builtin_shapes` reach the data, the
evaluation's classes and chance levels, and the preset's metadata."""

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPES = "circle,triangle,ring,cross,diamond,hexagon"


def test_palette_flag_choices_are_the_scene_palettes():
    # In a subprocess: importing a recipe defines its absl flags process-wide.
    check = ("import sys; sys.path.insert(0, sys.argv[1]); import pretrain_unicl as r; "
             "from florence_keras.data import scene; "
             "assert sorted(r.FLAGS['builtin_palette'].parser.enum_values) == sorted(scene.PALETTES); "
             "assert r.FLAGS['builtin_palette'].default == 'default' and r.FLAGS['builtin_shapes'].default == []")
    run = subprocess.run([sys.executable, "-c", check, os.path.join(ROOT, "recipes")], capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.slow  # a tiny main job with its evaluation: ~70 s of CPU
def test_tiny_main_job_on_the_alt_palette_and_six_shapes(tmp_path):
    run = subprocess.run(
        [sys.executable, os.path.join(ROOT, "recipes", "pretrain_unicl.py"), "--tiny", f"--model_dir={tmp_path}",
         "--builtin_palette=alt", f"--builtin_shapes={SHAPES}"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    scores = json.loads((tmp_path / "scores.json").read_text())
    shape, colour = scores["in_distribution"]["shape"], scores["in_distribution"]["colour"]
    pairs = scores["unseen_combinations"]["shape_colour"]
    # Classes and chance levels follow the generator's lists: 6 shapes, 8 colours, 48 pairs.
    assert (shape["classes"], colour["classes"], pairs["classes"]) == (6, 8, 48)
    assert abs(shape["chance_top1"] - 1 / 6) < 1e-12 and abs(pairs["chance_top1"] - 1 / 48) < 1e-12
    assert abs(pairs["chance_top5"] - 5 / 48) < 1e-12 and scores["unseen_combinations"]["shape"]["classes"] == 6
    assert re.search(r"zero-shot shape\+colour top-1 \(48-way\) \| [\d.]+% \| 2\.1% \|", run.stdout)
    assert re.search(r"zero-shot shape top-1 \(6-way\) \| [\d.]+% \| 16\.7% \|", run.stdout)
    with open(tmp_path / "data" / "builtin_info.json") as f:
        info = json.load(f)
    assert info["classes"] == SHAPES.split(",") and "maroon" in info["colours"] and "red" not in info["colours"]
    with open(tmp_path / "data" / "attributes_train_colour.csv") as f:
        assert {line.rsplit(",", 1)[1].split()[1] for line in f.read().splitlines()[1:]} <= set(info["colours"])
    training = json.loads((tmp_path / "preset" / "metadata.json").read_text())["florence_training"]
    assert training["builtin_palette"] == "alt" and training["builtin_shapes"] == SHAPES.split(",")

"""train_task (the adapters' shared training block) on a tiny FlorenceCLIP: the preset and report it writes, a
preempted run that saves nothing, and a rerun of a finished run that trains nothing."""

import json
import os
import re
import signal

import numpy as np
import pytest

from florence_keras.models.florence_clip import FlorenceCLIP
from florence_keras.training.task_training import train_task
from tests.model_fixtures import synthetic_image_text_input_fn
from tests.model_fixtures import tiny_clip

IMAGE_SIZE = 16
STEPS = 2


def _train(model_dir, make_dataset=None, **overrides):
    synthetic = synthetic_image_text_input_fn()
    kwargs = dict(
        model_dir=model_dir, task="toy", command="python toy.py --steps=2", steps=STEPS, batch_size=8,
        image_size=IMAGE_SIZE, learning_rate=1e-3, warmup_steps=100, weight_decay=0.05, checkpoint_every=100,
        seed=3, verbose=0)
    kwargs.update(overrides)
    return train_task(lambda: tiny_clip(IMAGE_SIZE), make_dataset or (lambda request, task: synthetic(request)),
                      **kwargs)


def _read_json(path):
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def test_trains_then_saves_the_preset_with_its_training_record_and_the_report(tmp_path, capsys):
    tasks_seen = []
    synthetic = synthetic_image_text_input_fn()

    def make_dataset(request, task):
        tasks_seen.append(task)
        return synthetic(request)

    outcome = _train(str(tmp_path), make_dataset, settings={"width": 4}, metadata={"train_data": "toy.csv"},
                     report=lambda: {"examples": 64}, after_training=lambda task: {"validation": {"score": 0.5}},
                     note=lambda: "3 clips skipped")
    assert outcome["status"] == "trained" and outcome["train"]["step"] == STEPS and not outcome["train"]["preempted"]
    assert len(tasks_seen) == 1 and isinstance(tasks_seen[0], FlorenceCLIP)  # the built Task reaches make_dataset
    preset_dir = tmp_path / "preset"
    assert outcome["preset_dir"] == str(preset_dir)
    record = _read_json(preset_dir / "metadata.json")["florence_training"]
    loss = outcome["train"]["loss"]
    assert isinstance(loss, float) and np.isfinite(loss)
    assert record == {"width": 4, "task": "toy", "command": "python toy.py --steps=2", "train_data": "toy.csv",
                      "final_loss": loss, "train_seconds": pytest.approx(outcome["seconds"]),
                      "validation": {"score": 0.5}}
    report = _read_json(tmp_path / "train_toy.json")
    assert report == json.loads(json.dumps(outcome["report"]))
    assert list(report) == ["train", "settings", "command", "preset_dir", "examples", "validation", "seconds",
                            "process_cpu_seconds"]
    assert report["train"]["step"] == STEPS and report["train"]["loss"] == loss
    assert report["settings"] == {"width": 4} and report["preset_dir"] == str(preset_dir)
    assert report["process_cpu_seconds"] > 0
    printed = capsys.readouterr().out
    assert re.search(rf"Trained {STEPS} steps in \d+ s wall, \d+ s process CPU \(final loss {loss:.4f}\); "
                     rf"3 clips skipped; wrote the preset {re.escape(str(preset_dir))}", printed)
    # The preset is a loadable Task.
    assert FlorenceCLIP.from_preset(str(preset_dir)).backbone.count_params() == tasks_seen[0].backbone.count_params()

    # Rerunning the finished model_dir trains nothing and leaves the preset and the report as they were.
    metadata_bytes = (preset_dir / "metadata.json").read_bytes()
    report_bytes = (tmp_path / "train_toy.json").read_bytes()
    calls = []
    rerun = _train(str(tmp_path), lambda request, task: calls.append(request),
                   after_training=lambda task: calls.append("after_training"))
    assert rerun["status"] == "already_trained" and rerun["train"]["step"] == STEPS
    assert rerun["train"]["loss"] is None and calls == []
    assert rerun["report"] == report
    assert (preset_dir / "metadata.json").read_bytes() == metadata_bytes
    assert (tmp_path / "train_toy.json").read_bytes() == report_bytes
    assert "Already trained" in capsys.readouterr().out


@pytest.fixture
def sigterm_ignored():
    """SIGTERM ignored outside the trainer (its own handler takes over while it trains), restored afterwards."""
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_a_preempted_run_saves_nothing_and_a_rerun_finishes(tmp_path, capsys, sigterm_ignored):
    synthetic = synthetic_image_text_input_fn()

    def preempting(request, task):
        # A SIGTERM arriving as the data starts: the trainer runs one step, checkpoints and stops.
        signal.raise_signal(signal.SIGTERM)
        return synthetic(request)

    after = []
    outcome = _train(str(tmp_path), preempting, steps=4, after_training=lambda task: after.append(task) or {})
    assert outcome["status"] == "preempted" and outcome["train"]["preempted"] and outcome["train"]["step"] == 1
    assert outcome["preset_dir"] is None and outcome["report"] is None and after == []
    assert not (tmp_path / "preset").exists() and not (tmp_path / "train_toy.json").exists()
    assert "Stopped at step 1 (preempted); rerun to resume." in capsys.readouterr().out
    assert os.path.isdir(tmp_path / "checkpoints")

    resumed = _train(str(tmp_path), steps=4)  # resumes from the step-1 checkpoint
    assert resumed["status"] == "trained" and resumed["train"]["step"] == 4
    assert _read_json(tmp_path / "train_toy.json")["train"]["step"] == 4
    assert _read_json(tmp_path / "preset" / "metadata.json")["florence_training"]["final_loss"] == \
        resumed["train"]["loss"]


@pytest.mark.parametrize("name", ["report", "note", "after_training"])
def test_refuses_a_value_that_is_not_a_callable(tmp_path, name):
    with pytest.raises(ValueError, match=f"`{name}` must be None or a callable"):
        _train(str(tmp_path), **{name: {"examples": 64}})
    assert not os.listdir(tmp_path)  # refused before anything was built or written


def test_lr_multipliers_scale_each_variables_step(tmp_path):
    """A multiplier of 1e-6 on the image encoder leaves it (almost) where it started; the text encoder moves."""
    start = {}

    def multipliers(task, variables):
        start.update({v.path: np.array(v.numpy()) for v in variables})
        image = {id(v) for v in task.backbone.image_encoder.weights}
        return [1e-6 if id(v) in image else 1.0 for v in variables]

    outcome = _train(str(tmp_path), lr_multipliers=multipliers, learning_rate=1e-2, warmup_steps=0)
    trained = FlorenceCLIP.from_preset(outcome["preset_dir"])
    moved = {"image": [], "text": []}
    for encoder in ("image", "text"):
        for variable in getattr(trained.backbone, f"{encoder}_encoder").trainable_variables:
            before = start[variable.path]
            moved[encoder].append(np.abs(np.asarray(variable.numpy()) - before).max())
    assert max(moved["image"]) < 1e-6 and max(moved["text"]) > 1e-3


def test_refuses_lr_multipliers_that_are_not_a_callable(tmp_path):
    with pytest.raises(ValueError, match="`lr_multipliers` must be None or a callable"):
        _train(str(tmp_path), lr_multipliers=[1.0])

"""TrainingStage, florence_stages, DatasetRequest and strategy selection."""

import json

import pytest

from florence_keras.training import DatasetRequest
from florence_keras.training import TrainingStage
from florence_keras.training import florence_stages
from florence_keras.training import is_chief
from florence_keras.training import make_strategy


def _summary(stages):
    return [(s.name, s.start_step, s.image_size, s.prompt_augmented_texts) for s in stages]


def test_florence_schedule():
    stages = florence_stages(1_260_000, augmented_texts_off_step=1_000_000, high_resolution_step=1_180_000)
    assert _summary(stages) == [
        ("stage1", 0, 224, True),
        ("stage2", 1_000_000, 224, False),
        ("stage3", 1_180_000, 384, False),
    ]


def test_single_stage_and_orderings():
    assert _summary(florence_stages(10)) == [("stage1", 0, 224, True)]
    assert _summary(florence_stages(10, prompt_augmented_texts=False)) == [("stage1", 0, 224, False)]
    # Resolution change before the augmented texts go off.
    assert _summary(florence_stages(10, augmented_texts_off_step=8, high_resolution_step=5, image_size=32,
                                    high_resolution_image_size=48)) == [
        ("stage1", 0, 32, True), ("stage2", 5, 48, True), ("stage3", 8, 48, False)
    ]
    # Both at the same step: one boundary.
    assert len(florence_stages(10, augmented_texts_off_step=5, high_resolution_step=5)) == 2


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(total_steps=0), "total_steps=0"),
        (dict(total_steps=10, augmented_texts_off_step=10), "augmented_texts_off_step=10"),
        (dict(total_steps=10, high_resolution_step=0), "high_resolution_step=0"),
    ],
)
def test_florence_stages_rejects_bad_steps(kwargs, match):
    with pytest.raises(ValueError, match=match):
        florence_stages(**kwargs)


def test_stage_and_request_validation():
    with pytest.raises(ValueError, match="start_step=-1"):
        TrainingStage("s", -1, 224, True)
    with pytest.raises(ValueError, match="image_size=0"):
        TrainingStage("s", 0, 0, True)
    with pytest.raises(ValueError, match="prompt_augmented_texts=1"):
        TrainingStage("s", 0, 224, 1)
    stage = TrainingStage("s", 0, 224, True)
    with pytest.raises(ValueError, match="input_pipeline_id=2"):
        DatasetRequest(stage, 4, 8, 2, 2)
    with pytest.raises(ValueError, match="batch_size=0"):
        DatasetRequest(stage, 0, 8, 1, 0)
    with pytest.raises(ValueError, match="TrainingStage"):
        DatasetRequest("stage1", 4, 8, 1, 0)


def test_strategy_names(monkeypatch):
    default = make_strategy("default")
    assert default.num_replicas_in_sync == 1 and is_chief(default)
    assert make_strategy(default) is default
    with pytest.raises(ValueError, match="strategy='gpu'"):
        make_strategy("gpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy("multi_worker")
    # A TF_CONFIG alone does not make a default-strategy process a non-chief.
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert is_chief(default)

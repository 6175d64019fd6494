"""Provenance of the shipped `florence_mini_builtin`: its metadata says how it was made, and its stored scores are
what the preset scores now.

The training code writes the metadata (command, data, seed, steps, times) and the evaluation's scores into the
preset; this test reloads the shipped preset, regenerates the built-in test splits from the stored settings (the
scenes of a split depend only on the seed and the scene index, not on the number of training scenes) and recomputes
the zero-shot scores. The shape probe (needs training scenes) and retrieval are not recomputed: the subset is the
six zero-shot scores.

Tolerance: two images per score. The preset was scored on the machine that trained it; another CPU (other SIMD
paths) may flip a near-tie, which moves a score by one image (1/418 here).
"""

import json
import os

import numpy as np
import pytest

from florence_keras.models import preset_registry

PRESET = "florence_mini_builtin"
TOLERANCE_IMAGES = 2


def _metadata(path):
    with open(os.path.join(path, "metadata.json"), encoding="utf-8") as f:
        return json.load(f)


def recorded_how_it_was_made(metadata):
    training = metadata["florence_training"]
    assert training["command"].startswith("python recipes/pretrain_unicl.py")
    for key in ("seed", "steps", "global_batch_size", "builtin_train", "builtin_test", "builtin_heldout",
                "image_size", "seconds", "cpu_seconds", "train_seconds", "final_loss"):
        assert training[key] is not None, key
    assert metadata["florence_scores"]["in_distribution"]["shape_linear_probe"]["train_images"] > 0


def rescore(preset_dir, data_dir):
    """The zero-shot scores of `preset_dir` on the test splits regenerated from its metadata."""
    from florence_keras.data.builtin_dataset import ensure_builtin_dataset
    from florence_keras.evaluation.heldout_evaluation import evaluate_builtin
    from florence_keras.models import FlorenceCLIP

    training = _metadata(preset_dir)["florence_training"]
    builtin = ensure_builtin_dataset(data_dir, 1, training["builtin_heldout"], training["image_size"],
                                     training["seed"], num_test=training["builtin_test"])
    return evaluate_builtin(FlorenceCLIP.from_preset(preset_dir), builtin, preset_dir, verbose=False,
                            probe_train_images=0)


def same_scores(now, stored):
    for part, keys in (("in_distribution", ("shape", "colour", "count", "place")),
                       ("unseen_combinations", ("shape", "shape_colour"))):
        for key in keys:
            a, b = now[part][key], stored[part][key]
            assert a["images"] == b["images"] and a["classes"] == b["classes"], (part, key)
            np.testing.assert_allclose(a["top1"], b["top1"], rtol=0, atol=TOLERANCE_IMAGES / b["images"],
                                       err_msg=f"{part}/{key}")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    path = preset_registry.resolve(PRESET).path
    return _metadata(path), rescore(path, str(tmp_path_factory.mktemp("provenance") / "data"))


def test_shipped_preset_records_how_it_was_made(shipped):
    recorded_how_it_was_made(shipped[0])


def test_shipped_preset_scores_reproduce(shipped):
    metadata, now = shipped
    same_scores(now, metadata["florence_scores"])


def test_a_changed_score_is_caught(shipped):
    # The check can fail: the stored shape score moved by three images.
    metadata, now = shipped
    stored = json.loads(json.dumps(metadata["florence_scores"]))
    shape = stored["in_distribution"]["shape"]
    shape["top1"] += 3 / shape["images"] * (-1 if shape["top1"] > 0.5 else 1)
    with pytest.raises(AssertionError, match="in_distribution/shape"):
        same_scores(now, stored)

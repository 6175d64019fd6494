"""train_vqa.py and eval_vqa.py end to end on a tiny preset and a few built-in scenes."""

import importlib.util
import json
import os
import shutil

import numpy as np
import pytest

from florence_keras.models import FlorenceVQA

_spec = importlib.util.spec_from_file_location(
    "eval_recipe_data", os.path.join(os.path.dirname(__file__), "eval_recipe_data.py")
)
eval_recipe_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_recipe_data)

# Named by path so that Bazel's generated BUILD gives the test them.
RECIPES = ("recipes/train_vqa.py", "recipes/eval_vqa.py")


def test_the_recipes_are_where_the_tests_run_them():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert all(os.path.isfile(os.path.join(root, path)) for path in RECIPES)


@pytest.mark.slow
def test_train_then_eval_vqa(tmp_path, tiny_preset_dir):
    model_dir = tmp_path / "m"
    stdout = eval_recipe_data.run_recipe(
        "train_vqa", f"--preset={tiny_preset_dir}", f"--model_dir={model_dir}", "--image_size=32", "--steps=2",
        "--batch_size=4", "--builtin_train=6", "--builtin_heldout=3", "--fusion_dim=16", "--fusion_layers=1",
        "--fusion_heads=2", "--warmup_steps=1", "--dense_label_steps=3", "--dense_label_scenes=10",
        timeout=400)
    assert "training questions on 6 images at 32px" in stdout
    # No --question_length: the longest question of these 6 scenes ("is the purple circle in front of the yellow
    # hexagon?": 12 BPE tokens, 14 with the start and end tokens) rounded up to a multiple of 8.
    assert "Questions packed to 16 tokens" in stdout
    summary = json.loads((model_dir / "train_vqa.json").read_text())
    # --colour_permutation=auto: on for the built-in scenes; every scene asks "is there a" (the colour-free yes/no
    # questions, --colour_permutation_answer_types), so each of the 6 images gets one channel-permuted copy.
    assert summary["settings"]["colour_permutation"] is True
    assert summary["settings"]["colour_permutation_answer_types"] == ["yes/no"]
    assert summary["settings"]["colour_permutation_copies"] == 1
    assert summary["colour_permuted_images"] == 6 and 6 <= summary["colour_permuted_questions"] <= 12
    assert f"Colour-permuted copies: 6 images, with their {summary['colour_permuted_questions']} " in stdout
    assert "Encoding 12 images" in stdout  # the default: frozen encoders, features cached once (copies included)
    # --place_questions / --grounding_weight: on for the built-in scenes (one "where is the X?" per uniquely
    # named object, training only; the named objects' attention targets from the scenes' masks).
    assert summary["settings"]["place_questions"] is True and summary["settings"]["grounding_weight"] == 1.0
    assert summary["place_questions"] >= 6 and f"--place_questions): {summary['place_questions']}" in stdout
    # --occlusion_questions=auto: one "is the X partly hidden?" per uniquely named object too.
    assert summary["settings"]["occlusion_questions"] is True
    assert summary["occlusion_questions"] == summary["place_questions"]  # the same objects
    assert f"--occlusion_questions): {summary['occlusion_questions']}" in stdout
    assert summary["settings"]["front_pair_questions"] is True  # (0 when no pair occludes)
    assert f"--front_pair_questions): {summary['front_pair_questions']}" in stdout
    assert 0 < summary["grounded_questions"] <= summary["names"] <= 2 * summary["grounded_questions"]
    assert f"{summary['names']} named objects in {summary['grounded_questions']} of " in stdout
    assert summary["train"]["step"] == 2 and summary["skipped"] == 0
    # --dense_labels=auto: stage 0 fits the occlusion decoder on 10 training scenes; the preset keeps it.
    assert "Stage 0 (--dense_labels): fitting the occlusion decoder on 10 training scenes, 3 steps" in stdout
    assert summary["settings"]["dense_labels"] is True and summary["dense_label_fit"]["steps"] == 3
    with np.load(model_dir / "dense_label_decoder.npz", allow_pickle=False) as stored:
        fitted = [stored[f"arr_{i}"] for i in range(len(stored.files) - 1)]
        assert json.loads(str(stored["settings"]))["steps"] == 3  # (what it was fitted with, for a rerun to check)
    assert summary["settings"]["freeze_backbone"] and summary["settings"]["cache_features"]
    vqa = FlorenceVQA.from_preset(str(model_dir / "preset"))
    assert vqa.image_size == 32 and vqa.answer_vocabulary and vqa.question_length == 16
    assert vqa.dense_label_classes == 3 and not vqa.dense_label_decoder.trainable
    for kept, stage0 in zip(vqa.dense_label_decoder.get_weights(), fitted):  # stage 0's decoder, unchanged after
        np.testing.assert_array_equal(kept, stage0)
    assert summary["settings"]["question_length"] == 16
    assert vqa.image_detail and summary["settings"]["image_detail"]  # the default: the finer stage folded in
    assert vqa.image_summary == "pooled" and summary["settings"]["image_summary"] == "pooled"  # (likewise)
    assert vqa.text_summary_dropout == 0.0 and summary["settings"]["text_summary_dropout"] == 0.0  # off by default
    # --question_prior=auto: on for the built-in scenes, with each answer's type from the annotations.
    assert vqa.question_prior and summary["settings"]["question_prior"] is True
    assert vqa.question_prior_floor == 0.1 and summary["settings"]["question_prior_floor"] == 0.1
    for answer, answer_type in zip(vqa.answer_vocabulary, vqa.answer_types):
        assert answer_type == ("yes/no" if answer in ("yes", "no") else "number" if answer.isdigit() else "other")
    start = FlorenceVQA.from_preset(str(tiny_preset_dir), answer_vocabulary=vqa.answer_vocabulary, image_size=32,
                                    question_length=16, fusion_dim=16, fusion_layers=1, fusion_heads=2)
    for trained, initial in zip(vqa.backbone.weights, start.backbone.weights):  # the encoders did not move
        assert np.array_equal(trained.numpy(), initial.numpy()), trained.path

    # Fine-tuning from the frozen run's preset trains the encoders again.
    tuned_dir = tmp_path / "tuned"
    eval_recipe_data.run_recipe(
        "train_vqa", f"--preset={model_dir / 'preset'}", f"--model_dir={tuned_dir}", "--nofreeze_backbone",
        "--image_size=32", "--steps=2", "--batch_size=4", "--builtin_train=6", "--builtin_heldout=3",
        "--warmup_steps=1", "--backbone_lr_multiplier=1", "--text_summary_dropout=0.5",
        timeout=400)  # the fusion settings: the preset's; the summary dropout through the whole model's graph
    tuned = FlorenceVQA.from_preset(str(tuned_dir / "preset"))
    assert tuned.text_summary_dropout == 0.5
    assert tuned.dense_label_classes == 3 and not (tuned_dir / "dense_label_decoder.npz").exists()  # the preset's
    for kept, stage0 in zip(tuned.dense_label_decoder.get_weights(), fitted):  # frozen in fine-tuning too
        np.testing.assert_array_equal(kept, stage0)
    assert any(not np.array_equal(a.numpy(), b.numpy())
               for a, b in zip(tuned.backbone.text_encoder.weights, vqa.backbone.text_encoder.weights))

    # Tokens from stage 0 have no finer stage: the default --image_detail steps aside (flags compose), an explicit
    # one is refused.
    stage0_dir = tmp_path / "stage0"
    stage0_run = ("train_vqa", f"--preset={tiny_preset_dir}", f"--model_dir={stage0_dir}", "--image_size=32",
                  "--steps=1", "--batch_size=4", "--builtin_train=6", "--builtin_heldout=3", "--fusion_dim=16",
                  "--fusion_layers=1", "--fusion_heads=2", "--image_token_stage=0", "--dense_label_steps=2",
                  "--dense_label_scenes=6", f"--builtin_dir={model_dir / 'data'}")
    stdout = eval_recipe_data.run_recipe(*stage0_run, timeout=400)
    assert "no finer stage to fold in (--image_detail off)" in stdout
    # A rerun in the same directory goes on from what is there: stage 0's decoder is not fitted again.
    stdout = eval_recipe_data.run_recipe(*stage0_run, timeout=400)
    assert "Stage 0 (--dense_labels): reusing the fitted decoder" in stdout
    assert not FlorenceVQA.from_preset(str(stage0_dir / "preset")).image_detail
    # Not with other stage-0 settings: refused while checkpoints trained on the old decoder are there, refitted
    # once they are gone.
    with pytest.raises(AssertionError, match=r"another stage-0 decoder \(fitted with other settings: steps 2 -> 3"):
        eval_recipe_data.run_recipe(*stage0_run, "--dense_label_steps=3", timeout=400)
    shutil.rmtree(stage0_dir / "checkpoints")
    stdout = eval_recipe_data.run_recipe(*stage0_run, "--dense_label_steps=3", timeout=400)
    assert "fitting again" in stdout and "fitted with other settings: steps 2 -> 3" in stdout
    assert "fitting the occlusion decoder on 6 training scenes, 3 steps" in stdout
    with pytest.raises(AssertionError, match="needs a stage before"):
        eval_recipe_data.run_recipe(
            "train_vqa", f"--preset={tiny_preset_dir}", f"--model_dir={tmp_path / 'stage0b'}", "--image_size=32",
            "--steps=1", "--builtin_train=6", "--builtin_heldout=3", "--image_token_stage=0", "--image_detail",
            f"--builtin_dir={model_dir / 'data'}", timeout=400)

    # The held-out questions plus one whose image is missing: scored on the good ones, the bad one counted; and one
    # longer than the preset's 16 tokens: scored, cut to them, and counted.
    data = model_dir / "data" / "vqa"
    questions = json.loads((data / "questions_heldout.json").read_text())
    questions["questions"].append({"image_id": 999, "question": "is there a star?", "question_id": 99999})
    long_question = "is there a " + "very " * 20 + "small star?"
    questions["questions"].append({"image_id": questions["questions"][0]["image_id"], "question": long_question,
                                   "question_id": 99998})
    questions["images"].append({"id": 999, "file_name": "images/heldout/nope.jpg"})
    annotations = json.loads((data / "annotations_heldout.json").read_text())
    annotations["annotations"].append({"question_id": 99999, "image_id": 999, "answer_type": "yes/no",
                                       "question_type": "is there a", "answers": [{"answer": "no"}] * 10})
    annotations["annotations"].append({"question_id": 99998, "image_id": questions["questions"][0]["image_id"],
                                       "answer_type": "yes/no", "question_type": "is there a",
                                       "answers": [{"answer": "no"}] * 10})
    (tmp_path / "q.json").write_text(json.dumps(questions))
    (tmp_path / "a.json").write_text(json.dumps(annotations))
    output = tmp_path / "eval"
    stdout = eval_recipe_data.run_recipe(
        "eval_vqa", f"--preset={model_dir / 'preset'}", f"--questions={tmp_path / 'q.json'}",
        f"--annotations={tmp_path / 'a.json'}", f"--image_dir={model_dir / 'data'}", "--image_template={file_name}",
        f"--output_dir={output}", timeout=400)
    results = json.loads((output / "results.json").read_text())
    assert results["skipped"] == 1 and results["skipped_reasons"] == {"missing": 1}
    assert results["num_questions"] == len(questions["questions"]) - 1
    assert results["questions_cut"] == 1 and results["question_length"] == 16
    assert results["question_prior"] is True and results["question_prior_floor"] == 0.1  # the preset's
    assert f"1 of {results['num_questions']} questions are longer than the preset's 16 tokens" in stdout
    assert 0.0 <= results["overall"] <= 100.0 and set(results["perAnswerType"]) <= {"yes/no", "number", "other"}
    predictions = json.loads((output / "predictions.json").read_text())
    assert len(predictions) == results["num_questions"] and set(predictions[0]) == {"question_id", "answer"}
    assert "| overall |" in (output / "results.md").read_text() and "| overall |" in stdout

    # The floor is inference only: eval_vqa scores the same preset with another one.
    eval_recipe_data.run_recipe(
        "eval_vqa", f"--preset={model_dir / 'preset'}", f"--output_dir={tmp_path / 'eval_floor'}",
        "--question_prior_floor=1", timeout=400)
    floor_results = json.loads((tmp_path / "eval_floor" / "results.json").read_text())
    assert floor_results["question_prior_floor"] == 1.0 and floor_results["num_questions"] > 0

    # Other data: --question_prior=auto leaves the branch off.
    external_dir = tmp_path / "external"
    external_stdout = eval_recipe_data.run_recipe(
        "train_vqa", f"--preset={tiny_preset_dir}", f"--model_dir={external_dir}", f"--questions={tmp_path / 'q.json'}",
        f"--annotations={tmp_path / 'a.json'}", f"--image_dir={model_dir / 'data'}", "--image_template={file_name}",
        "--image_size=32", "--steps=1", "--batch_size=4", "--fusion_dim=16", "--fusion_layers=1", "--fusion_heads=2",
        "--colour_permutation_copies=2", timeout=400)
    # The copies are off for other data (auto), so asking for two says it has no effect instead of ignoring it.
    assert "--colour_permutation_copies=2 has no effect" in external_stdout
    assert not FlorenceVQA.from_preset(str(external_dir / "preset")).question_prior
    external = json.loads((external_dir / "train_vqa.json").read_text())
    assert external["settings"]["colour_permutation"] is False and external["colour_permuted_images"] == 0
    # ... and so are the place questions and the attention targets, which need the built-in scenes.
    assert external["settings"]["place_questions"] is False and external["settings"]["grounding_weight"] == 0.0
    assert external["place_questions"] == 0 and "grounded_questions" not in external
    assert external["settings"]["occlusion_questions"] is False and external["occlusion_questions"] == 0
    assert external["settings"]["front_pair_questions"] is False and external["front_pair_questions"] == 0
    assert external["settings"]["dense_labels"] is False and external["dense_label_fit"] == {}
    assert FlorenceVQA.from_preset(str(external_dir / "preset")).dense_label_classes == 0
    assert FlorenceVQA.from_preset(str(external_dir / "preset")).grounding_weight == 0.0
    with pytest.raises(Exception, match="need the built-in scenes"):
        eval_recipe_data.run_recipe(
            "train_vqa", f"--preset={tiny_preset_dir}", f"--model_dir={tmp_path / 'refused'}",
            f"--questions={tmp_path / 'q.json'}", f"--annotations={tmp_path / 'a.json'}",
            f"--image_dir={model_dir / 'data'}", "--image_template={file_name}", "--grounding_weight=1", timeout=400)
    with pytest.raises(Exception, match="need the built-in scenes"):
        eval_recipe_data.run_recipe(
            "train_vqa", f"--preset={tiny_preset_dir}", f"--model_dir={tmp_path / 'refused'}",
            f"--questions={tmp_path / 'q.json'}", f"--annotations={tmp_path / 'a.json'}",
            f"--image_dir={model_dir / 'data'}", "--image_template={file_name}", "--dense_labels=on", timeout=400)

r"""Score a VQA preset with the official VQA accuracy (issue #14): overall, per answer type, per question type.

Run:
  python recipes/eval_vqa.py --preset=M/preset --questions=Q.json --annotations=A.json --image_dir=DIR \
      [--image_template='COCO_{split}_{image_id:012d}.jpg'] --output_dir=OUT

`--questions=builtin` (the default) scores the built-in scenes' held-out split (written to --builtin_dir, by default
`<preset>/../data` as train_vqa.py leaves it). Writes `OUT/results.json` (`overall`, `perAnswerType`,
`perQuestionType` as the official evaluator reports them: percentages, 2 decimals), `OUT/predictions.json` (the
official results format `[{"question_id", "answer"}]`, what the VQA evaluation server reads) and `OUT/results.md`
(a Markdown table). Without --annotations only the predictions are written.
"""

import os
import time

from absl import app
from absl import flags

flags.DEFINE_string("preset", None, "A FlorenceVQA preset directory (train_vqa.py's M/preset).", required=True)
flags.DEFINE_string("questions", "builtin", "VQA v2 questions JSON, or 'builtin' (the built-in held-out split).")
flags.DEFINE_string("annotations", None, "VQA v2 annotations JSON (without it: predictions only).")
flags.DEFINE_string("image_dir", None, "Folder of the images (default: the questions file's folder).")
flags.DEFINE_string("image_template", "COCO_{split}_{image_id:012d}.jpg",
                    "Image file name under --image_dir: str.format with {split}, {image_id}, {file_name}.")
flags.DEFINE_string("split", None, "The {split} of --image_template (default: the questions file's data_subtype).")
flags.DEFINE_string("output_dir", None, "Where results.json, predictions.json and results.md go.", required=True)
flags.DEFINE_integer("max_questions", None, "Score at most this many questions.")
flags.DEFINE_integer("batch_size", 64, "Questions per forward pass.")
flags.DEFINE_string("builtin_dir", None, "Built-in scenes folder (default: <preset>/../data).")
flags.DEFINE_integer("builtin_train", 4000, "Built-in training scenes (must match train_vqa.py's).")
flags.DEFINE_integer("builtin_heldout", 600, "Built-in held-out scenes (must match train_vqa.py's).")
flags.DEFINE_integer("seed", 0, "Built-in scenes' seed (must match train_vqa.py's).")
flags.DEFINE_float("question_prior_floor", None, "For a preset trained with --question_prior: score with this floor "
                   "instead of the preset's (inference only, no retraining; see train_vqa.py).", lower_bound=0.0,
                   upper_bound=1.0)

FLAGS = flags.FLAGS


def main(argv):
    del argv
    import numpy as np

    from florence_keras.data.vqa_builtin import ensure_builtin_vqa_data
    from florence_keras.data.vqa_v2 import load_vqa_images
    from florence_keras.data.vqa_v2 import read_vqa_v2
    from florence_keras.evaluation import reporting
    from florence_keras.evaluation.vqa_evaluation import answer_questions
    from florence_keras.evaluation.vqa_evaluation import evaluate_vqa
    from florence_keras.models.florence_vqa import FlorenceVQA
    from florence_keras.models.token_packing import count_cut

    start = time.time()
    questions, annotations = FLAGS.questions, FLAGS.annotations
    image_dir, image_template = FLAGS.image_dir, FLAGS.image_template
    if questions == "builtin":
        builtin = ensure_builtin_vqa_data(
            FLAGS.builtin_dir or os.path.join(os.path.dirname(os.path.abspath(FLAGS.preset)), "data"),
            FLAGS.builtin_train, FLAGS.builtin_heldout, image_size=64, seed=FLAGS.seed)
        questions, annotations = builtin["heldout"]["questions"], builtin["heldout"]["annotations"]
        image_dir = image_dir or builtin["image_dir"]
        if FLAGS["image_template"].using_default_value:
            image_template = builtin["image_template"]
    image_dir = image_dir or os.path.dirname(os.path.abspath(questions))
    overrides = {} if FLAGS.question_prior_floor is None else {"question_prior_floor": FLAGS.question_prior_floor}
    model = FlorenceVQA.from_preset(FLAGS.preset, **overrides)
    if overrides and not model.question_prior:
        print(f"Note: --question_prior_floor has no effect: {FLAGS.preset} was trained without --question_prior.")
    data = read_vqa_v2(questions, annotations, image_dir=image_dir, image_template=image_template,
                       split=FLAGS.split, max_questions=FLAGS.max_questions)
    loaded = load_vqa_images(data["records"], model.image_size, skip_counter=data["skip_counter"])
    records = loaded["records"]
    token_ids = np.concatenate([
        np.asarray(model.tokenize_questions([r["question"] for r in records[i:i + 4096]]))
        for i in range(0, len(records), 4096)])
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    # The preset packs questions to its own length (often the longest training question): longer ones are cut.
    cut = count_cut(model.preprocessor.tokenizer, [r["question"] for r in records], model.question_length)
    cut_note = (f"{cut} of {len(records)} questions are longer than the preset's {model.question_length} tokens "
                f"and were cut to them")
    if cut:
        print(f"Note: {cut_note}.")
    skipped = {"skipped": data["skip_counter"].count, "skipped_reasons": dict(data["skip_counter"].reasons),
               "questions_cut": cut, "question_length": int(model.question_length)}
    if annotations is None:
        answers, _ = answer_questions(model, loaded["images"], loaded["image_index"], token_ids,
                                      batch_size=FLAGS.batch_size)
        predictions = [{"question_id": r["question_id"], "answer": a} for r, a in zip(records, answers)]
        reporting.write_json(predictions, os.path.join(FLAGS.output_dir, "predictions.json"))
        print(f"Wrote {len(predictions)} predictions to {FLAGS.output_dir}/predictions.json (no annotations: "
              f"not scored); {data['skip_counter'].summary()}")
        return
    kept_ids = {r["question_id"] for r in records}
    kept_annotations = [a for a in data["annotations"] if a["question_id"] in kept_ids]
    scores = evaluate_vqa(model, loaded["images"], loaded["image_index"], token_ids, records, kept_annotations,
                          batch_size=FLAGS.batch_size)
    predictions = scores.pop("predictions")
    scores.pop("scores")
    results = dict(scores, preset=FLAGS.preset, questions=str(questions), annotations=str(annotations),
                   question_prior=model.question_prior, question_prior_floor=model.question_prior_floor,
                   images=int(len(loaded["images"])), seconds=time.time() - start, **skipped)
    reporting.write_json(results, os.path.join(FLAGS.output_dir, "results.json"))
    reporting.write_json(predictions, os.path.join(FLAGS.output_dir, "predictions.json"))
    rows = [{"split": "overall", "questions": scores["num_questions"], "VQA accuracy": scores["overall"]}]
    counts = {}
    for annotation in kept_annotations:
        counts[annotation.get("answer_type", "unknown")] = counts.get(annotation.get("answer_type", "unknown"), 0) + 1
    for name, value in sorted(scores["perAnswerType"].items()):
        rows.append({"split": name, "questions": counts.get(name, 0), "VQA accuracy": value})
    table = reporting.markdown_table(rows)
    question_rows = [{"question type": name, "VQA accuracy": value}
                     for name, value in sorted(scores["perQuestionType"].items())]
    with open(os.path.join(FLAGS.output_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(f"# VQA: {FLAGS.preset}\n\n{scores['num_questions']} questions on {len(loaded['images'])} images "
                f"from {questions} (skipped: {data['skip_counter'].count}; {cut_note}). Official VQA accuracy (%).\n\n"
                f"{table}\n\n"
                f"{reporting.markdown_table(question_rows)}\n")
    print(table)
    print(f"\nWrote {FLAGS.output_dir}/results.json, predictions.json, results.md")


if __name__ == "__main__":
    app.run(main)

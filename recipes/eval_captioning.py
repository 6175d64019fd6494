r"""Score a captioning preset with the COCO caption toolkit: BLEU-4, METEOR, ROUGE-L, CIDEr (issue #14).

Run:
  python recipes/eval_captioning.py --preset=M/preset --data=captions.json --output_dir=OUT

`--data=builtin` (the default) scores the built-in scenes' held-out split (`captions_multi_heldout.json`: three
references per scene whose primary object is a colour-shape combination never seen in training), written to
--builtin_dir (default `<preset>/../data`, where train_captioning.py leaves it). Captions are generated greedily
unless --num_beams > 1 (beam search ranked with --length_penalty). The scores are pycocoevalcap's own (METEOR and
its PTB tokenizer need Java; without it METEOR is skipped, and results.json says so). Writes `OUT/results.json`,
`OUT/captions.json` (COCO results format: `[{"image_id", "caption"}]`), `OUT/results.md` (a Markdown table and
sample captions with their references).
"""

import os
import time

from absl import app
from absl import flags

flags.DEFINE_string("preset", None, "A FlorenceCaptioner preset directory (train_captioning.py's M/preset).",
                    required=True)
flags.DEFINE_list("data", ["builtin"], "'builtin' (held-out split) or COCO captions JSON file(s).")
flags.DEFINE_string("image_root", None, "Folder of the images' file_name (default: each JSON file's folder).")
flags.DEFINE_string("output_dir", None, "Where results.json, captions.json and results.md go.", required=True)
flags.DEFINE_integer("num_beams", None, "Beam width (1 = greedy); default the preset's.")
flags.DEFINE_float("length_penalty", None, "Beam length penalty α; default the preset's.")
flags.DEFINE_integer("max_images", None, "Score at most this many images.")
flags.DEFINE_integer("batch_size", 64, "Images per generation batch.")
flags.DEFINE_integer("num_samples", 10, "Sample captions shown in results.md.")
flags.DEFINE_string("builtin_dir", None, "Built-in scenes folder (default: <preset>/../data).")
flags.DEFINE_enum("builtin_split", "heldout", ["heldout", "test", "train"], "Built-in split to score.")
flags.DEFINE_integer("builtin_train", 4000, "Built-in training scenes (must match train_captioning.py's).")
flags.DEFINE_integer("builtin_heldout", 600, "Built-in held-out scenes.")
flags.DEFINE_integer("seed", 0, "Built-in scenes' seed (must match train_captioning.py's).")

FLAGS = flags.FLAGS

TABLE_METRICS = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


def main(argv):
    del argv
    from florence_keras.data.builtin_dataset import ensure_builtin_dataset
    from florence_keras.data.coco_captions import load_caption_data
    from florence_keras.evaluation import reporting
    from florence_keras.evaluation.caption_evaluation import evaluate_captioning
    from florence_keras.models.florence_captioner import FlorenceCaptioner

    start = time.time()
    data = FLAGS.data
    if data == ["builtin"]:
        builtin_dir = FLAGS.builtin_dir or os.path.join(os.path.dirname(os.path.abspath(FLAGS.preset)), "data")
        data = [ensure_builtin_dataset(builtin_dir, FLAGS.builtin_train, FLAGS.builtin_heldout, image_size=64,
                                       seed=FLAGS.seed)["captions_multi"][FLAGS.builtin_split]]
    captioner = FlorenceCaptioner.from_preset(FLAGS.preset)
    examples = load_caption_data(data, captioner.image_size, image_root=FLAGS.image_root,
                                 max_images=FLAGS.max_images)
    evaluation = evaluate_captioning(captioner, examples["images"], examples["image_ids"], examples["captions"],
                                     num_beams=FLAGS.num_beams, length_penalty=FLAGS.length_penalty,
                                     batch_size=FLAGS.batch_size)
    scores = evaluation["scores"]
    num_beams = captioner.num_beams if FLAGS.num_beams is None else FLAGS.num_beams
    alpha = captioner.length_penalty if FLAGS.length_penalty is None else FLAGS.length_penalty
    decoding = "greedy" if num_beams == 1 else f"beam {num_beams}, length penalty {alpha:g}"
    samples = [{"image_id": p["image_id"], "generated": p["caption"], "references": refs}
               for p, refs in zip(evaluation["predictions"][:FLAGS.num_samples],
                                  examples["captions"][:FLAGS.num_samples])]
    results = {
        "preset": FLAGS.preset, "data": [str(p) for p in data], "decoding": decoding,
        **{name: scores[name] for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")},
        "images": scores["num_images"], "java": scores["java"], "tokenizer": scores["tokenizer"],
        "exact_match": sum(p["caption"] in refs for p, refs in zip(evaluation["predictions"], examples["captions"]))
        / len(examples["captions"]),
        "skipped": examples["skip_counter"].count, "skipped_reasons": dict(examples["skip_counter"].reasons),
        "generation_seconds": evaluation["generation_seconds"], "samples": samples,
        "seconds": time.time() - start,
    }
    if not scores["java"]:
        results["note"] = "Java not found: METEOR skipped; captions tokenized by a Python approximation of PTB."
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    reporting.write_json(results, os.path.join(FLAGS.output_dir, "results.json"))
    reporting.write_json(evaluation["predictions"], os.path.join(FLAGS.output_dir, "captions.json"))
    row = {"images": scores["num_images"], "decoding": decoding}
    row.update({name: "n/a (no Java)" if scores[name] is None else scores[name] for name in TABLE_METRICS})
    table = reporting.markdown_table([row], float_format=".3f")
    sample_rows = [{"image_id": s["image_id"], "generated": s["generated"], "references": " | ".join(s["references"])}
                   for s in samples]
    with open(os.path.join(FLAGS.output_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(f"# Captioning: {FLAGS.preset}\n\n{scores['num_images']} images from {', '.join(map(str, data))} "
                f"(skipped: {examples['skip_counter'].count}); scores by pycocoevalcap ({scores['tokenizer']}).\n\n"
                f"{table}\n\n## Sample captions\n\n{reporting.markdown_table(sample_rows)}\n")
    print(table)
    for sample in samples[:5]:
        print(f"  {sample['image_id']}: {sample['generated']!r}  refs: {sample['references']}")
    print(f"\nWrote {FLAGS.output_dir}/results.json, captions.json, results.md")


if __name__ == "__main__":
    app.run(main)

r"""Score a `FlorenceDetector` on COCO instances with pycocotools' COCOeval (issue #13).

Run:
  python recipes/eval_detection.py --preset=M/preset --data=instances.json --output_dir=OUT
      [--class_names=a,b,c | --zero_shot [--class_names=a,b]] [--image_root=DIR]

`--data=builtin` (the default) scores the held-out split of the built-in scenes the preset was trained on
(`instances_heldout.json` beside its `instances_train.json`).
* Supervised: the detector's own classes; `--class_names` restricts the evaluation to those categories.
* `--zero_shot` (a class-agnostic detector): the boxes are classified among `--class_names` (default: every
  category of the data) by their CLIP features against the names' text embeddings, and COCOeval scores those
  categories only (or `--eval_class_names`: e.g. classify among all 8 built-in names, score the 2 unseen ones).

Writes OUT/results.json (pycocotools' 12 stats: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl in
[0, 1], and the settings), OUT/detections.json (COCO results format), OUT/results.md (a Markdown table) and
OUT/detections.png (detections on sample images, ground truth dashed).
"""

import json
import os
import sys

from absl import app
from absl import flags

flags.DEFINE_string("preset", None, "A FlorenceDetector preset directory (train_detection.py's M/preset).",
                    required=True)
flags.DEFINE_string("data", "builtin", "A COCO instances JSON, or 'builtin' (the preset's built-in held-out split).")
flags.DEFINE_string("image_root", None, "Folder of the JSON's file_names (default: the JSON's folder).")
flags.DEFINE_string("output_dir", None, "Where the results go.", required=True)
flags.DEFINE_list("class_names", [], "Categories to evaluate (zero-shot: the names to classify among).")
flags.DEFINE_list("eval_class_names", [], "Categories COCOeval scores (default: --class_names, else all the "
                  "detector's); e.g. zero-shot among all names, scored on the unseen ones only.")
flags.DEFINE_bool("zero_shot", False, "Classify the class-agnostic boxes by text (needs a --class_agnostic model).")
flags.DEFINE_enum("region_classifier", None, ["pooled", "crops"], "Zero-shot box classifier (default: the "
                  "preset's): 'pooled' box-pooled last stage, 'crops' each box cropped and re-encoded by CLIP.")
flags.DEFINE_float("crop_context", None, "With 'crops': the crop's side over the box's longer side (default: the "
                   "preset's, 1.5).")
flags.DEFINE_integer("batch_size", 32, "Images per forward pass.")
flags.DEFINE_integer("max_images", None, "Score at most this many images.")
flags.DEFINE_integer("num_plot_images", 8, "Images drawn in detections.png.")

FLAGS = flags.FLAGS


def _builtin_heldout(preset_dir):
    metadata_path = os.path.join(preset_dir, "metadata.json")
    train_data = None
    if os.path.exists(metadata_path):
        with open(metadata_path, encoding="utf-8") as f:
            train_data = json.load(f).get("florence_training", {}).get("train_data")
    if not train_data or os.path.basename(train_data) != "instances_train.json":
        raise ValueError(f"--data=builtin needs a preset trained on the built-in scenes; {preset_dir} was trained "
                         f"on {train_data!r}. Pass --data=instances.json.")
    return os.path.join(os.path.dirname(train_data), "instances_heldout.json")


def main(argv):
    del argv
    import time

    import numpy as np

    from florence_keras.data.coco_detection import load_coco_detection
    from florence_keras.evaluation import reporting
    from florence_keras.evaluation.detection_evaluation import STAT_NAMES
    from florence_keras.evaluation.detection_evaluation import coco_detection_metrics
    from florence_keras.evaluation.detection_evaluation import detect_records
    from florence_keras.evaluation.detection_evaluation import plot_detections
    from florence_keras.evaluation.detection_evaluation import read_rgb
    from florence_keras.models.florence_detector import FlorenceDetector

    start = time.time()
    data = _builtin_heldout(FLAGS.preset) if FLAGS.data == "builtin" else FLAGS.data
    detector = FlorenceDetector.from_preset(FLAGS.preset)
    records = load_coco_detection(data, image_root=FLAGS.image_root, max_images=FLAGS.max_images)
    id_of_name = dict(zip(records["class_names"], records["category_ids"]))
    unknown = [name for name in FLAGS.class_names + FLAGS.eval_class_names if name not in id_of_name]
    if unknown:
        raise ValueError(f"--class_names {unknown} are not categories of {data} ({records['class_names']}).")
    if FLAGS.zero_shot:
        if not detector.class_agnostic:
            raise ValueError("--zero_shot needs a class-agnostic detector (train_detection.py --class_agnostic); "
                             f"{FLAGS.preset} predicts its {len(detector.class_names)} training classes.")
        names = list(FLAGS.class_names) or list(records["class_names"])
        detector.set_class_names(names)
        if FLAGS.region_classifier:
            detector.region_classifier = FLAGS.region_classifier
        if FLAGS.crop_context:
            detector.crop_context = FLAGS.crop_context
    else:
        names = list(FLAGS.class_names) or [name for name in detector.class_names if name in id_of_name]
    scored = list(FLAGS.eval_class_names) or names
    category_ids = [id_of_name[name] for name in scored]
    results, per_image = detect_records(detector, records, batch_size=FLAGS.batch_size)
    stats = coco_detection_metrics(data, results, image_ids=records["image_ids"], category_ids=category_ids)
    seconds = time.time() - start
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    with open(os.path.join(FLAGS.output_dir, "detections.json"), "w", encoding="utf-8") as f:
        json.dump(results, f)
    count = min(FLAGS.num_plot_images, len(records["paths"]))
    images = [read_rgb(path) for path in records["paths"][:count]]
    truth = [(records["boxes"][i][records["box_mask"][i] > 0], records["classes"][i][records["box_mask"][i] > 0])
             for i in range(count)]
    plot_detections(images, per_image[:count], detector.class_names, os.path.join(FLAGS.output_dir, "detections.png"),
                    ground_truth=truth, title=f"{os.path.basename(data)}: detections (ground truth dashed)")
    command = " ".join(["python", "recipes/eval_detection.py"] + sys.argv[1:])
    table = reporting.markdown_table([{name: stats[name] for name in STAT_NAMES}], float_format=".3f")
    summary = {
        "stats": {name: stats[name] for name in STAT_NAMES}, **{name: stats[name] for name in STAT_NAMES},
        "cocoeval_summary": stats.get("summary", []), "data": data, "preset": FLAGS.preset,
        "mode": "zero_shot" if FLAGS.zero_shot else "supervised", "class_names": names,
        "region_classifier": detector.region_classifier if FLAGS.zero_shot else None, "scored_class_names": scored,
        "category_ids": category_ids, "images": len(records["paths"]), "detections": len(results),
        "skipped": records["skip_counter"].count, "skipped_reasons": dict(records["skip_counter"].reasons),
        "seconds": seconds, "command": command}
    reporting.write_report(FLAGS.output_dir, "results", "Detection (pycocotools COCOeval, bbox)", summary, [
        ("Scores", table),
        ("Setting", f"`{command}`\n\n{summary['mode']} on {len(records['paths'])} images of `{data}`, classes "
                    f"{', '.join(names)}, scored on {', '.join(scored)}; {len(results)} detections; {seconds:.0f} s."),
    ])
    print(table)
    print(f"Wrote {FLAGS.output_dir}/results.json, detections.json, results.md, detections.png ({seconds:.0f} s)")


if __name__ == "__main__":
    app.run(main)

r"""Zero-shot classification with prompt ensembles (CLIP protocol): top-1/top-5, per-class accuracy.

Run:
  python recipes/eval_zeroshot.py --preset=PRESET --data=/data/val --data_format=imagefolder \
      --output_dir=/tmp/zeroshot [--templates=imagenet80|imagenet7|FILE] [--class_names=imagenet|FILE]

A quick run on the built-in held-out scenes with the packaged trained preset:
  python recipes/eval_zeroshot.py --preset=florence_mini_builtin --data=builtin --builtin_train=8 \
      --builtin_heldout=60 --output_dir=/tmp/zeroshot

Writes `<output_dir>/zeroshot.json`, `zeroshot.md` and `confusion_matrix.png`. Features are cached under
`<output_dir>/feature_cache` (or `--cache_dir`), except for randomly initialised architecture presets.
"""

import os
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from florence_keras.evaluation import encoded_data
from florence_keras.evaluation import plots
from florence_keras.evaluation import reporting
from florence_keras.evaluation import zero_shot

# A sibling module (running `python recipes/<name>.py` puts this folder on sys.path).
import evaluation_flags

evaluation_flags.define_flags(
    ["imagefolder", "csvlabel", "tfrecord"], "Evaluation data path(s), or 'builtin' (the built-in held-out split).",
    max_examples_help="Evaluate at most this many images (short runs).",
)
flags.DEFINE_string("templates", "imagenet80", "imagenet80, imagenet7, or a file with one template per line.")
flags.DEFINE_string("class_names", None, "Readable class names: 'imagenet' or a file (see readable_class_names).")
flags.DEFINE_multi_integer("top_k", [1, 5], "Reported top-k accuracies.")

FLAGS = flags.FLAGS
_SETTINGS = evaluation_flags.SHARED_SETTINGS + ("templates", "class_names", "top_k")


def main(argv):
    del argv
    start = time.time()
    cache_dir = evaluation_flags.cache_dir()
    templates = zero_shot.load_templates(FLAGS.templates)
    clip, encoded = evaluation_flags.load_and_encode("labels", {"eval": (FLAGS.data, "heldout")})
    data = encoded["eval"]
    class_names, labels = np.unique(data["class_names"], return_inverse=True)
    prompt_names = zero_shot.readable_class_names(class_names, FLAGS.class_names)
    encode_seconds = time.time() - start
    logging.info("Building the zero-shot classifier: %d classes x %d templates", len(class_names), len(templates))
    classifier = zero_shot.build_zero_shot_classifier(
        lambda texts: encoded_data.encode_texts_cached(clip, FLAGS.preset, texts, cache_dir=cache_dir),
        prompt_names, templates, batch_size=len(prompt_names) * len(templates),  # one cached, batched call
    )
    result = zero_shot.zero_shot_accuracy(data["features"], labels, classifier, ks=FLAGS.top_k,
                                          class_names=prompt_names)
    seconds = time.time() - start
    summary = {
        "preset": FLAGS.preset, "data": ",".join(FLAGS.data),
        "images": result["num_examples"], "classes": result["num_classes"], "templates": len(templates),
    }
    summary.update({f"top-{k} (%)": reporting.percent(result[f"top{k}"]) for k in sorted(set(FLAGS.top_k))})
    summary["mean per-class (%)"] = reporting.percent(result["mean_per_class_accuracy"])
    summary["seconds"] = seconds
    per_class = [
        {"class": name, "images": count, "top-1 (%)": reporting.percent(accuracy)}
        for name, count, accuracy in zip(prompt_names, result["class_counts"], result["per_class_accuracy"])
    ]
    results = {key: value for key, value in result.items() if key != "predictions"}
    results.update(
        settings={name: FLAGS[name].value for name in _SETTINGS}, templates=templates,
        data_class_names=class_names.tolist(), num_skipped=int(data["num_skipped"]),
        seconds=seconds, encode_seconds=encode_seconds,
    )
    paths = reporting.write_report(
        FLAGS.output_dir, "zeroshot", "Zero-shot classification",
        results,
        [("Summary", reporting.markdown_table([summary])), ("Per class", reporting.markdown_table(per_class))],
    )
    plots.plot_confusion_matrix(result["confusion_matrix"], prompt_names,
                                os.path.join(FLAGS.output_dir, "confusion_matrix.png"),
                                title="Zero-shot confusion matrix")
    logging.info("Zero-shot top-1 %.2f%% (%d images, %d classes, %.1f s); wrote %s", 100 * result["top1"],
                 result["num_examples"], result["num_classes"], seconds, paths["markdown"])
    print(reporting.markdown_table([summary]))


if __name__ == "__main__":
    app.run(main)

r"""Linear probe: L-BFGS logistic regression on frozen image features, C swept on a validation split (CLIP).

Run:
  python recipes/linear_probe.py --preset=PRESET --data=/data/train --test_data=/data/test \
      --data_format=imagefolder --output_dir=/tmp/probe

A quick run on the built-in scenes with the packaged trained preset (fits on the built-in training split, tests
on its held-out split):
  python recipes/linear_probe.py --preset=florence_mini_builtin --data=builtin --builtin_train=400 \
      --builtin_heldout=100 --output_dir=/tmp/probe

Without `--val_data`, a stratified `--validation_fraction` of the training data selects C; the final model is refit
on train + validation. Without `--test_data`, a stratified `--test_fraction` of `--data` is held out for testing.
Features are cached under `<output_dir>/feature_cache` (or `--cache_dir`), so a new sweep does not re-encode.
Writes `linear_probe.json`, `linear_probe.md` and `confusion_matrix.png`.
"""

import os
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from florence_keras.evaluation import builtin_data
from florence_keras.evaluation import linear_probe
from florence_keras.evaluation import plots
from florence_keras.evaluation import reporting

# A sibling module (running `python recipes/<name>.py` puts this folder on sys.path).
import evaluation_flags

evaluation_flags.define_flags(
    ["imagefolder", "csvlabel", "tfrecord"],
    "Training data path(s), or 'builtin' (the built-in training split; tested on its held-out split unless "
    "--test_data is given).",
    max_examples_help="Read at most this many images per split (short runs).",
)
flags.DEFINE_list("test_data", None, "Test data path(s), or 'builtin' (the built-in held-out split); default: "
                  "hold out --test_fraction of --data.")
flags.DEFINE_list("val_data", None, "Validation data path(s); default: split --validation_fraction of train.")
flags.DEFINE_float("test_fraction", 0.2, "Held-out fraction of --data when there is no --test_data.")
flags.DEFINE_float("validation_fraction", 0.2, "Validation fraction of the training data when no --val_data.")
flags.DEFINE_integer("seed", 0, "Seed of the stratified splits.")
flags.DEFINE_float("c_min", 1e-6, "Smallest C of the coarse sweep.")
flags.DEFINE_float("c_max", 1e6, "Largest C of the coarse sweep.")
flags.DEFINE_float("c_step_decades", 2.0, "Spacing of the coarse sweep, in decades.")
flags.DEFINE_integer("refine_steps", 4, "Refinement rounds around the best coarse C.")
flags.DEFINE_integer("max_iter", 1000, "L-BFGS iterations per fit.")

FLAGS = flags.FLAGS
_SETTINGS = evaluation_flags.SHARED_SETTINGS + (
    "test_data", "val_data", "test_fraction", "validation_fraction", "seed", "c_min", "c_max", "c_step_decades",
    "refine_steps", "max_iter",
)


def _coarse_grid():
    if not 0 < FLAGS.c_min <= FLAGS.c_max or FLAGS.c_step_decades <= 0:
        raise app.UsageError(
            f"Need 0 < --c_min <= --c_max and --c_step_decades > 0. Received: c_min={FLAGS.c_min}, "
            f"c_max={FLAGS.c_max}, c_step_decades={FLAGS.c_step_decades}"
        )
    low, high = np.log10(FLAGS.c_min), np.log10(FLAGS.c_max)
    count = int(np.floor((high - low) / FLAGS.c_step_decades + 1e-9)) + 1
    return tuple(10.0 ** (low + FLAGS.c_step_decades * np.arange(count)))


def main(argv):
    del argv
    start = time.time()
    coarse_grid = _coarse_grid()
    sources = {"train": (FLAGS.data, "train")}
    if FLAGS.test_data:
        sources["test"] = (FLAGS.test_data, "heldout")
    elif builtin_data.is_builtin(FLAGS.data):
        sources["test"] = (FLAGS.data, "heldout")
    if FLAGS.val_data:
        sources["val"] = (FLAGS.val_data, "heldout")
    _, encoded = evaluation_flags.load_and_encode("labels", sources)
    train = encoded["train"]
    train_x, train_y = train["features"], train["class_names"]
    if "test" in encoded:
        test_x, test_y = encoded["test"]["features"], encoded["test"]["class_names"]
    else:
        keep, held_out = linear_probe.stratified_split(train_y, FLAGS.test_fraction, seed=FLAGS.seed)
        test_x, test_y = train_x[held_out], train_y[held_out]
        train_x, train_y = train_x[keep], train_y[keep]
    val_x = val_y = None
    if "val" in encoded:
        val_x, val_y = encoded["val"]["features"], encoded["val"]["class_names"]
    encode_seconds = time.time() - start
    result = linear_probe.linear_probe_evaluate(
        train_x, train_y, test_x, test_y, val_features=val_x, val_labels=val_y,
        validation_fraction=FLAGS.validation_fraction, seed=FLAGS.seed, coarse_grid=coarse_grid,
        refine_steps=FLAGS.refine_steps, max_iter=FLAGS.max_iter, verbose=True,
    )
    seconds = time.time() - start
    class_names = [str(name) for name in result["classes"]]
    summary = {
        "preset": FLAGS.preset, "train": result["num_train"],
        "val": result["num_val"], "test": result["num_test"], "classes": result["num_classes"],
        "best C": f"{result['best_C']:.3g}", "top-1 (%)": reporting.percent(result["top1"]),
        "top-5 (%)": reporting.percent(result["top5"]),
        "mean per-class (%)": reporting.percent(result["mean_per_class_accuracy"]), "seconds": seconds,
    }
    sweep = [{"C": f"{t['C']:.3g}", "val accuracy (%)": f"{100 * t['val_accuracy']:.2f}",
              "val log loss": f"{t['val_log_loss']:.4f}"} for t in sorted(result["sweep"], key=lambda t: t["C"])]
    results = {key: value for key, value in result.items() if key not in ("model", "predictions", "classes")}
    results.update(
        class_names=class_names, settings={name: FLAGS[name].value for name in _SETTINGS},
        coarse_grid=list(coarse_grid), seconds=seconds, encode_seconds=encode_seconds,
    )
    paths = reporting.write_report(
        FLAGS.output_dir, "linear_probe", "Linear probe", results,
        [("Summary", reporting.markdown_table([summary])),
         ("Regularisation sweep (validation)", reporting.markdown_table(sweep))],
    )
    plots.plot_confusion_matrix(result["confusion_matrix"], class_names,
                                os.path.join(FLAGS.output_dir, "confusion_matrix.png"),
                                title="Linear-probe confusion matrix")
    logging.info("Linear probe top-1 %.2f%% with C=%.3g (%.1f s); wrote %s", 100 * result["top1"],
                 result["best_C"], seconds, paths["markdown"])
    print(reporting.markdown_table([summary]))


if __name__ == "__main__":
    app.run(main)

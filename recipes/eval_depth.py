r"""Score a depth preset on image-depth pairs: AbsRel, SqRel, RMSE, RMSE(log), δ<1.25^k, with and without median
scaling (issue #16).

Run:
  python recipes/eval_depth.py --preset=M/preset --data=pairs.csv --output_dir=OUT

`--data=builtin` (the default) scores the built-in scenes' held-out split (written to --builtin_dir, by default
`<preset>/../data` as train_depth.py leaves it; --builtin_layout as trained, by default the ground plane). The model predicts at each image's own resolution (`predict`
resizes the input and the depth back), so the ground truth is scored as stored. Writes `OUT/results.json`,
`OUT/results.md` (a Markdown table) and `OUT/depth_examples.png` (image / ground truth / prediction / error).
"""

import os
import time

from absl import app
from absl import flags

flags.DEFINE_string("preset", None, "A FlorenceDepthEstimator preset directory (train_depth.py's M/preset).",
                    required=True)
flags.DEFINE_list("data", ["builtin"], "'builtin' (held-out split) or image,depth CSV file(s).")
flags.DEFINE_string("output_dir", None, "Where results.json, results.md and depth_examples.png go.", required=True)
flags.DEFINE_integer("eval_size", 64, "Resize pairs to this square size before scoring (the built-in scenes' own "
                     "size: 64); 0 scores each pair at its own size (all pairs of one size).")
flags.DEFINE_integer("max_examples", None, "Score at most this many pairs.")
flags.DEFINE_float("max_depth", None, "Ignore ground truth beyond this depth (m).")
flags.DEFINE_integer("batch_size", 32, "Images per forward pass.")
flags.DEFINE_string("builtin_dir", None, "Built-in scenes folder (default: <preset>/../data).")
flags.DEFINE_integer("builtin_train", 4000, "Built-in training scenes (must match train_depth.py's).")
flags.DEFINE_integer("builtin_heldout", 600, "Built-in held-out scenes.")
flags.DEFINE_integer("seed", 0, "Built-in scenes' seed (must match train_depth.py's).")
flags.DEFINE_enum("builtin_layout", "ground_plane", ["ground_plane", "flat"],
                  "Built-in scenes' layout (must match train_depth.py's).")

FLAGS = flags.FLAGS


def main(argv):
    del argv
    from florence_keras.data.depth_builtin import ensure_builtin_depth_data
    from florence_keras.data.depth_pairs import load_depth_pairs
    from florence_keras.evaluation import reporting
    from florence_keras.evaluation.depth_evaluation import evaluate_depth
    from florence_keras.evaluation.depth_evaluation import plot_depth_examples
    from florence_keras.evaluation.depth_metrics import METRIC_NAMES
    from florence_keras.models.florence_depth_estimator import FlorenceDepthEstimator

    start = time.time()
    data = FLAGS.data
    if data == ["builtin"]:
        builtin_dir = FLAGS.builtin_dir or os.path.join(os.path.dirname(os.path.abspath(FLAGS.preset)), "data")
        data = [ensure_builtin_depth_data(builtin_dir, FLAGS.builtin_train, FLAGS.builtin_heldout, image_size=64,
                                          seed=FLAGS.seed, layout=FLAGS.builtin_layout)["heldout"]]
    pairs = load_depth_pairs(data, FLAGS.eval_size or None, max_examples=FLAGS.max_examples)
    estimator = FlorenceDepthEstimator.from_preset(FLAGS.preset)
    scores = evaluate_depth(estimator, pairs["images"], pairs["depth"], batch_size=FLAGS.batch_size,
                            max_depth=FLAGS.max_depth)
    rows = []
    for label, metrics in (("no median scaling", scores["metrics"]),
                           ("median scaling", scores["metrics_median_scaled"])):
        row = {"scaling": label}
        row.update({name: metrics[name] for name in METRIC_NAMES})
        rows.append(row)
    results = {
        "preset": FLAGS.preset, "data": [str(p) for p in data], "eval_size": FLAGS.eval_size or "native",
        "metrics": scores["metrics"], "metrics_median_scaled": scores["metrics_median_scaled"],
        "pairs": len(pairs["images"]), "skipped_pairs": pairs["skip_counter"].count,
        "skipped_reasons": dict(pairs["skip_counter"].reasons), "seconds": time.time() - start,
    }
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    reporting.write_json(results, os.path.join(FLAGS.output_dir, "results.json"))
    table = reporting.markdown_table(rows, float_format=".4f")
    with open(os.path.join(FLAGS.output_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(f"# Depth: {FLAGS.preset}\n\n{len(pairs['images'])} pairs from {', '.join(map(str, data))} "
                f"(skipped: {pairs['skip_counter'].count}).\n\n{table}\n")
    plot_depth_examples(pairs["images"], pairs["depth"], scores["predictions"],
                        os.path.join(FLAGS.output_dir, "depth_examples.png"), title=FLAGS.preset)
    print(table)
    print(f"\nWrote {FLAGS.output_dir}/results.json, results.md, depth_examples.png")


if __name__ == "__main__":
    app.run(main)

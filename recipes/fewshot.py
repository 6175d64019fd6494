r"""Few-shot transfer: N-way K-shot episodes, a linear adapter on frozen features, mean and 95% interval.

Run (the CDFSL setting: 5-way, K = 5/20/50, 15 queries per class, 600 episodes):
  python recipes/fewshot.py --preset=PRESET --data=/data/target_domain --data_format=imagefolder \
      --output_dir=/tmp/fewshot

A quick run on the built-in held-out scenes with the packaged trained preset:
  python recipes/fewshot.py --preset=florence_mini_builtin --data=builtin --builtin_train=8 --builtin_heldout=120 \
      --output_dir=/tmp/fewshot --shots=1,5 --n_query=5 --episodes=20

A K whose episodes the data cannot supply (too few classes with K + n_query images) is skipped and reported.
Writes `fewshot.json`, `fewshot.md` and `accuracy_vs_shots.png`.
"""

import os
import time

from absl import app
from absl import flags
from absl import logging

from florence_keras.evaluation import few_shot
from florence_keras.evaluation import plots
from florence_keras.evaluation import reporting

# A sibling module (running `python recipes/<name>.py` puts this folder on sys.path).
import evaluation_flags

evaluation_flags.define_flags(
    ["imagefolder", "csvlabel", "tfrecord"],
    "Data path(s) the episodes are drawn from, or 'builtin' (the built-in held-out split).",
)
flags.DEFINE_list("shots", ["5", "20", "50"], "Shots per class (K) to evaluate.")
flags.DEFINE_integer("n_way", 5, "Classes per episode.")
flags.DEFINE_integer("n_query", 15, "Query images per class and episode.")
flags.DEFINE_integer("episodes", 600, "Episodes per K.")
flags.DEFINE_float("C", 1.0, "Inverse L2 strength of the linear adapter.")
flags.DEFINE_integer("seed", 0, "Episode seed.")

FLAGS = flags.FLAGS
_SETTINGS = evaluation_flags.SHARED_SETTINGS + ("shots", "n_way", "n_query", "episodes", "C", "seed")


def main(argv):
    del argv
    start = time.time()
    try:
        shots = [int(k) for k in FLAGS.shots]
    except ValueError as error:
        raise app.UsageError(f"--shots must be integers. Received: {FLAGS.shots}") from error
    _, encoded = evaluation_flags.load_and_encode("labels", {"all": (FLAGS.data, "heldout")})
    data = encoded["all"]
    encode_seconds = time.time() - start
    results, skipped = few_shot.few_shot_sweep(
        data["features"], data["class_names"], shots=shots, n_way=FLAGS.n_way, n_query=FLAGS.n_query,
        num_episodes=FLAGS.episodes, seed=FLAGS.seed, C=FLAGS.C, verbose=True,
    )
    if not results:
        raise ValueError(f"No requested K could be evaluated on {FLAGS.data}: {[s['reason'] for s in skipped]}")
    seconds = time.time() - start
    preset_name = FLAGS.preset
    rows = [{"preset": preset_name, "way": r["n_way"], "shots": r["k_shot"], "episodes": r["num_episodes"],
             "accuracy (%)": reporting.percent(r["mean_accuracy"]), "± 95% (%)": reporting.percent(r["ci95"])}
            for r in results]
    sections = [("Accuracy", reporting.markdown_table(rows))]
    if skipped:
        sections.append(("Skipped", reporting.markdown_table(skipped)))
    output = {
        "results": [{key: value for key, value in r.items() if key != "accuracies"} for r in results],
        "episode_accuracies": {str(r["k_shot"]): r["accuracies"] for r in results},
        "skipped": skipped, "num_images": int(len(data["features"])), "num_skipped": int(data["num_skipped"]),
        "settings": {name: FLAGS[name].value for name in _SETTINGS}, "seconds": seconds,
        "encode_seconds": encode_seconds,
    }
    paths = reporting.write_report(FLAGS.output_dir, "fewshot", "Few-shot transfer", output, sections)
    plots.plot_accuracy_vs_shots(results, os.path.join(FLAGS.output_dir, "accuracy_vs_shots.png"),
                                 title=f"{FLAGS.n_way}-way few-shot accuracy", label=preset_name)
    logging.info("Few-shot done in %.1f s; wrote %s", seconds, paths["markdown"])
    print(reporting.markdown_table(rows))


if __name__ == "__main__":
    app.run(main)

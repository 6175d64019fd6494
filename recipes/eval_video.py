r"""Score a video classifier with multi-view testing (issue #15): top-1 / top-5, per-class table, confusion PNG.

Run:
  python recipes/eval_video.py --preset=M/preset --data=DIR --views=4x3 --output_dir=OUT

DIR is a class-per-folder tree of clips with the model's classes; `--data=builtin` scores the built-in held-out
clips (`<preset>/../data/video/heldout`, as train_video.py leaves them). Each clip is read as temporal x spatial
views (--views: temporal positions spread over the clip x square crops at the start / middle / end of the long
side), the views' class probabilities are averaged, and top-k is taken from the average. Writes
OUT/results.json (top1, top5, single-view top-1, per-class accuracy, confusion matrix, skipped clips),
OUT/results.md and OUT/confusion.png.
"""

import os
import time

from absl import app
from absl import flags

flags.DEFINE_string("preset", None, "A FlorenceVideoClassifier preset (train_video.py's M/preset).", required=True)
flags.DEFINE_string("data", "builtin", "'builtin' or a class-per-folder clip directory.")
flags.DEFINE_string("output_dir", None, "Where results.json, results.md and confusion.png go.", required=True)
flags.DEFINE_string("views", "4x3", "Temporal x spatial views per clip.")
flags.DEFINE_integer("num_frames", None, "Frames per view (default the model's).")
flags.DEFINE_integer("frame_stride", 1, "Step between frames (dense sampling).")
flags.DEFINE_enum("sampling", "dense", ["dense", "uniform"], "Clip sampling.")
flags.DEFINE_integer("batch_size", 8, "Clips per batch.")

FLAGS = flags.FLAGS


def main(argv):
    del argv
    from florence_keras.data.video_index import list_video_folder
    from florence_keras.evaluation import reporting
    from florence_keras.evaluation.plots import plot_confusion_matrix
    from florence_keras.evaluation.video_evaluation import evaluate_video_classifier
    from florence_keras.models.florence_video_classifier import FlorenceVideoClassifier

    start = time.time()
    data = FLAGS.data
    if data == "builtin":
        data = os.path.join(os.path.dirname(os.path.abspath(FLAGS.preset)), "data", "video", "heldout")
    paths, labels, class_names = list_video_folder(data)
    task = FlorenceVideoClassifier.from_preset(FLAGS.preset)
    result = evaluate_video_classifier(task, paths, labels, class_names, views=FLAGS.views,
                                       num_frames=FLAGS.num_frames, stride=FLAGS.frame_stride,
                                       sampling=FLAGS.sampling, batch_size=FLAGS.batch_size)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    class_names = result["class_names"]  # the model's classes
    plot_confusion_matrix(result["confusion_matrix"], class_names, os.path.join(FLAGS.output_dir, "confusion.png"),
                          title=f"Confusion ({result['views']} views)")
    result.update(preset=FLAGS.preset, data=data, seconds=time.time() - start,
                  process_cpu_seconds=time.process_time())
    table = reporting.markdown_table(
        [{"class": name, "clips": count, "accuracy": acc}
         for name, count, acc in zip(class_names, result["class_counts"], result["per_class_accuracy"])],
        float_format=".3f")
    summary = reporting.markdown_table([{k: result[k] for k in ("views", "top1", "top5", "single_view_top1",
                                                                 "num_examples", "skipped_clips") if k in result}],
                                       float_format=".4f")
    result.pop("predictions", None)
    reporting.write_report(FLAGS.output_dir, "results", "Video classification", result,
                           [("Summary", summary), ("Per class", table)])
    print(summary)
    print(table)
    print(f"{time.time() - start:.0f} s wall, {time.process_time():.0f} s process CPU; wrote {FLAGS.output_dir}")


if __name__ == "__main__":
    app.run(main)

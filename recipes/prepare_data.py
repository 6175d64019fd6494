r"""Converts image-text (or image-label) data in any supported format to resized TFRecord shards.

Run:
  python recipes/prepare_data.py --input=/data/cc3m/train.csv --data_format=csv \
      --output_dir=/data/cc3m_tfrecord --num_shards=256 --image_size=256 --prefix=train

  Formats: csv | tsv | csvlabel | coco | imagefolder | wds | tfrecord. Images whose shorter side exceeds
  --image_size are resized (aspect kept) and re-encoded as JPEG; other JPEGs are copied unchanged.
  Resumable: rerun the same command and complete shards are skipped. To split the work over processes or
  machines, give each one --task_index=i --num_tasks=n (shard k goes to task k mod n).

Tiny mode (writes a small built-in dataset under <output_dir>/builtin_source and converts its CSV):
  python recipes/prepare_data.py --tiny --output_dir=/tmp/prepared

Prints a final report: records written, examples skipped (with reasons), shards resumed. Train on the result with
`--train_data=<output_dir> --data_format=tfrecord`.
"""

import json
import os

from absl import app
from absl import flags
from absl import logging

from florence_keras.data.builtin_dataset import write_builtin_dataset
from florence_keras.data.image_decoding import DEFAULT_MAX_PIXELS
from florence_keras.data.image_records import DATA_FORMATS
from florence_keras.data.tfrecord_shards import write_tfrecord_shards

flags.DEFINE_list("input", None, "Input path(s): index files, ImageFolder roots, shards, globs, {000..009} ranges.")
flags.DEFINE_enum("data_format", "csv", list(DATA_FORMATS), "Input format.")
flags.DEFINE_string("output_dir", None, "Where the TFRecord shards go.", required=True)
flags.DEFINE_integer("num_shards", 8, "Number of output shards.", lower_bound=1)
flags.DEFINE_integer("image_size", 256, "Resize images whose shorter side is larger to this; 0 keeps sizes.",
                     lower_bound=0)
flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality of re-encoded images.", lower_bound=1, upper_bound=100)
flags.DEFINE_string("prefix", "data", "Shard file name prefix.")
flags.DEFINE_integer("task_index", 0, "This process's index when the shards are split over --num_tasks.",
                     lower_bound=0)
flags.DEFINE_integer("num_tasks", 1, "Processes sharing the work.", lower_bound=1)
flags.DEFINE_string("image_root", None, "Image directory for csv/tsv/csvlabel/coco (default: the index's dir).")
flags.DEFINE_string("image_key", None, "CSV image column / TFRecord image feature.")
flags.DEFINE_string("text_key", None, "CSV caption (or label) column / TFRecord caption feature / wds extension.")
flags.DEFINE_integer("max_image_pixels", DEFAULT_MAX_PIXELS, "Refuse larger images (decompression bombs).",
                     lower_bound=1)
flags.DEFINE_bool("tiny", False, "Smoke test: convert a small built-in dataset written under output_dir.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:  # called directly, e.g. main(["prepare_data", "--tiny", ...]) from a test
        FLAGS.unparse_flags()
        FLAGS(argv)
    if FLAGS.task_index >= FLAGS.num_tasks:
        raise app.UsageError(f"--task_index must be < --num_tasks. Received: {FLAGS.task_index}, {FLAGS.num_tasks}")
    paths, data_format = FLAGS.input, FLAGS.data_format
    if FLAGS.tiny:
        source = write_builtin_dataset(os.path.join(FLAGS.output_dir, "builtin_source"), num_train=48,
                                       num_heldout=0, image_size=64, formats=("csv",))
        paths, data_format = [source["csv"]["train"]], "csv"
    if not paths:
        raise app.UsageError("--input is required (or --tiny).")
    shards = [k for k in range(FLAGS.num_shards) if k % FLAGS.num_tasks == FLAGS.task_index]
    report = write_tfrecord_shards(
        paths, data_format, FLAGS.output_dir, num_shards=FLAGS.num_shards, image_size=FLAGS.image_size or None,
        jpeg_quality=FLAGS.jpeg_quality, prefix=FLAGS.prefix, shard_indices=shards,
        max_image_pixels=FLAGS.max_image_pixels, image_root=FLAGS.image_root, image_key=FLAGS.image_key,
        text_key=FLAGS.text_key, progress=FLAGS.progress,
    )
    reasons = ", ".join(f"{reason}={count}" for reason, count in sorted(report["reasons"].items())) or "none"
    print(f"records written: {report['written']}")
    print(f"examples skipped: {report['skipped']} ({reasons})")
    print(f"shards: {len(report['shards'])} in {FLAGS.output_dir} ({report['resumed']} already complete, skipped)")
    with open(os.path.join(FLAGS.output_dir, f"{FLAGS.prefix}-report-task{FLAGS.task_index}.json"), "w",
              encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    logging.info("prepare_data done: %s", {key: report[key] for key in ("written", "skipped", "resumed")})


if __name__ == "__main__":
    app.run(main)

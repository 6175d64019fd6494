r"""Zero-shot image-text retrieval: R@1/5/10 in both directions (COCO / Flickr30K protocol, 5 captions per image).

Run:
  python recipes/eval_retrieval.py --preset=PRESET --data=/data/captions_val.json --data_format=coco \
      --builtin_heldout=60 --output_dir=/tmp/retrieval

A quick run on the built-in held-out scenes with the packaged trained preset:
  python recipes/eval_retrieval.py --preset=florence_mini_builtin --data=builtin --builtin_train=8 \
      --builtin_heldout=60 --output_dir=/tmp/retrieval

An image query is correct at k if any of its captions is among the k best texts; a caption query if its image is
among the k best images. Writes `retrieval.json`, `retrieval.md`, `text_to_image.png` and `image_to_text.png`
(result grids) under `--output_dir`.
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
from florence_keras.evaluation import retrieval

# A sibling module (running `python recipes/<name>.py` puts this folder on sys.path).
import evaluation_flags

evaluation_flags.define_flags(
    ["coco", "csv", "tsv", "wds", "tfrecord"],
    "Image-caption data path(s), or 'builtin' (the built-in held-out split).",
    batch_size_help="Examples per encoding batch.",
    max_examples_help="Read at most this many image-caption examples (short runs).",
)
flags.DEFINE_multi_integer("recall_k", [1, 5, 10], "Reported recalls R@k.")
flags.DEFINE_integer("grid_queries", 4, "Queries shown in each result grid (0: no grids).")
flags.DEFINE_integer("grid_k", 5, "Results shown per query in the grids.")

FLAGS = flags.FLAGS
_SETTINGS = evaluation_flags.SHARED_SETTINGS + ("recall_k", "grid_queries")


def _grids(data, text_features, output_dir):
    """Writes the two result grids for evenly spaced queries; returns their paths."""
    images, captions, text_to_image = data["image_features"], data["captions"], data["text_to_image"]
    k = min(FLAGS.grid_k, len(images), len(captions))
    text_queries = np.unique(np.linspace(0, len(captions) - 1, FLAGS.grid_queries).round().astype(int))
    top_images = retrieval.retrieve_top_k(text_features[text_queries], images, k)
    text_grid = plots.plot_text_to_image_results(
        [captions[q] for q in text_queries], [[data["thumbnails"][i] for i in row] for row in top_images],
        os.path.join(output_dir, "text_to_image.png"), correct=top_images == text_to_image[text_queries, None],
    )
    image_queries = np.unique(np.linspace(0, len(images) - 1, FLAGS.grid_queries).round().astype(int))
    top_texts = retrieval.retrieve_top_k(images[image_queries], text_features, k)
    image_grid = plots.plot_image_to_text_results(
        [data["thumbnails"][q] for q in image_queries], [[captions[t] for t in row] for row in top_texts],
        os.path.join(output_dir, "image_to_text.png"), correct=text_to_image[top_texts] == image_queries[:, None],
    )
    return [text_grid, image_grid]


def main(argv):
    del argv
    start = time.time()
    clip, encoded = evaluation_flags.load_and_encode("captions", {"eval": (FLAGS.data, "heldout")})
    data = encoded["eval"]
    logging.info("Encoding %d captions of %d images", len(data["captions"]), len(data["image_sources"]))
    text_features = encoded_data.encode_texts_cached(clip, FLAGS.preset, data["captions"],
                                                     cache_dir=evaluation_flags.cache_dir())
    metrics = retrieval.retrieval_metrics(
        data["image_features"], text_features, data["text_to_image"], ks=FLAGS.recall_k
    )
    grids = _grids(data, text_features, FLAGS.output_dir) if FLAGS.grid_queries > 0 else []
    seconds = time.time() - start
    row = {"preset": FLAGS.preset, "data": ",".join(FLAGS.data),
           "images": metrics["num_images"], "captions": metrics["num_texts"]}
    for direction in ("image_to_text", "text_to_image"):
        for k in sorted(set(FLAGS.recall_k)):
            label = "I→T" if direction == "image_to_text" else "T→I"
            row[f"{label} R@{k} (%)"] = reporting.percent(metrics[f"{direction}_R@{k}"])
    row["seconds"] = seconds
    results = dict(
        metrics, settings={name: FLAGS[name].value for name in _SETTINGS}, seconds=seconds,
        num_skipped=int(data["num_skipped"]), num_empty_captions=int(data["num_empty_captions"]),
        num_images_without_caption=int(data["num_images_without_caption"]), grids=grids,
    )
    paths = reporting.write_report(
        FLAGS.output_dir, "retrieval", "Image-text retrieval", results,
        [("Recall", reporting.markdown_table([row]))],
    )
    logging.info("Retrieval done in %.1f s; wrote %s", seconds, paths["markdown"])
    print(reporting.markdown_table([row]))


if __name__ == "__main__":
    app.run(main)

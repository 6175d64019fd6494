r"""Zero-shot image-text retrieval: R@1/5/10 in both directions (COCO / Flickr30K protocol, 5 captions per image).

Run:
  python recipes/eval_retrieval.py --preset=PRESET --data=/data/captions_val.json --data_format=coco \
      --output_dir=/tmp/retrieval

Tiny mode (smoke test; a tiny random model saved to <output_dir>/tiny_preset replaces --preset):
  python recipes/eval_retrieval.py --tiny --data=/data/captions.csv --data_format=csv --output_dir=/tmp/retrieval

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

from florence_keras.evaluation import builtin_data
from florence_keras.evaluation import encoded_data
from florence_keras.evaluation import plots
from florence_keras.evaluation import reporting
from florence_keras.evaluation import retrieval

flags.DEFINE_string("preset", None, "Preset name, preset directory or handle.")
flags.DEFINE_bool("tiny", False, "Smoke-test mode: a tiny random model instead of --preset.")
flags.DEFINE_list("data", None, "Image-caption data path(s), or 'builtin' (the built-in held-out split).",
                  required=True)
builtin_data.define_builtin_flags()
flags.DEFINE_enum("data_format", "coco", ["coco", "csv", "tsv", "wds", "tfrecord"], "Image-caption data format.")
flags.DEFINE_string("output_dir", None, "Where results are written.", required=True)
flags.DEFINE_integer("batch_size", 32, "Examples per encoding batch.")
flags.DEFINE_integer("max_examples", None, "Read at most this many image-caption examples (tiny runs).")
flags.DEFINE_string("cache_dir", None, "Feature cache directory (default: <output_dir>/feature_cache).")
flags.DEFINE_multi_integer("recall_k", [1, 5, 10], "Reported recalls R@k.")
flags.DEFINE_integer("grid_queries", 4, "Queries shown in each result grid (0: no grids).")
flags.DEFINE_integer("grid_k", 5, "Results shown per query in the grids.")

FLAGS = flags.FLAGS
_SETTINGS = ("preset", "tiny", "data", "data_format", "batch_size", "max_examples", "recall_k", "grid_queries")


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
    cache_dir = FLAGS.cache_dir or os.path.join(FLAGS.output_dir, "feature_cache")
    preset = encoded_data.recipe_preset(FLAGS.preset, FLAGS.tiny, FLAGS.output_dir)
    clip = encoded_data.load_clip(preset)
    builtin_dir, settings = builtin_data.builtin_settings(FLAGS)
    paths, data_format = builtin_data.resolve_data(FLAGS.data, FLAGS.data_format, "captions", "heldout",
                                                   builtin_dir, **settings)
    data = encoded_data.encode_captioned_images(
        clip, preset, paths, data_format, split="eval", batch_size=FLAGS.batch_size,
        cache_dir=cache_dir, max_examples=FLAGS.max_examples,
    )
    logging.info("Encoding %d captions of %d images", len(data["captions"]), len(data["image_sources"]))
    text_features = encoded_data.encode_texts_cached(clip, preset, data["captions"], cache_dir=cache_dir)
    metrics = retrieval.retrieval_metrics(
        data["image_features"], text_features, data["text_to_image"], ks=FLAGS.recall_k
    )
    grids = _grids(data, text_features, FLAGS.output_dir) if FLAGS.grid_queries > 0 else []
    seconds = time.time() - start
    row = {"preset": "tiny (random)" if FLAGS.tiny else FLAGS.preset, "data": ",".join(FLAGS.data),
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

"""The flags every evaluation recipe shares, and the one preamble they run: load, resolve the data, encode.

Used by `eval_zeroshot.py`, `eval_retrieval.py`, `fewshot.py` and `linear_probe.py` (imported as a sibling
module: a recipe runs as `python recipes/<name>.py`, which puts this folder on `sys.path`). A recipe calls
`define_flags(...)` at import, next to its own flags, and `load_and_encode(...)` in its `main()`; the library
function it calls (`florence_keras.evaluation.evaluation_inputs.load_and_encode`) takes plain arguments.

Any preset works, a trained one (`--preset=florence_mini_builtin`, shipped in the package) or a directory
written by `pretrain_unicl.py` / `save_to_preset`; the tests save a tiny random preset and pass its directory.
"""

import os

from absl import flags

from florence_keras.evaluation import builtin_data
from florence_keras.evaluation import evaluation_inputs

FLAGS = flags.FLAGS

# The flags `define_flags` adds; a recipe lists them in its report's settings with its own.
SHARED_SETTINGS = ("preset", "data", "data_format", "batch_size", "max_examples")


def define_flags(data_formats, data_help, batch_size_help="Images per encoding batch.",
                 max_examples_help="Read at most this many examples per data source (short runs)."):
    """Defines `--preset`, `--data`, `--data_format`, `--output_dir`, `--batch_size`, `--max_examples`,
    `--cache_dir` and the `--builtin_*` flags of `--data=builtin`.

    Args:
        data_formats: the formats `--data_format` accepts; the first is its default.
        data_help: help text of `--data` (what the data is, what `builtin` means for this recipe).
        batch_size_help, max_examples_help: help texts.
    """
    flags.DEFINE_string("preset", None, "Preset name, preset directory or handle.", required=True)
    flags.DEFINE_list("data", None, data_help, required=True)
    flags.DEFINE_enum("data_format", data_formats[0], list(data_formats), "Format of the data paths.")
    flags.DEFINE_string("output_dir", None, "Where results are written.", required=True)
    flags.DEFINE_integer("batch_size", 32, batch_size_help)
    flags.DEFINE_integer("max_examples", None, max_examples_help)
    flags.DEFINE_string("cache_dir", None, "Feature cache directory (default: <output_dir>/feature_cache).")
    flags.DEFINE_string("builtin_dir", None, "With --data=builtin: where the built-in scenes are written or reused "
                        "(default <output_dir>/builtin_data).")
    flags.DEFINE_integer("builtin_train", builtin_data.DEFAULT_SETTINGS["num_train"],
                         "With --data=builtin: training scenes.")
    flags.DEFINE_integer("builtin_heldout", builtin_data.DEFAULT_SETTINGS["num_heldout"],
                         "With --data=builtin: held-out scenes.")


def cache_dir():
    """`--cache_dir`, default `<output_dir>/feature_cache`."""
    return FLAGS.cache_dir or os.path.join(FLAGS.output_dir, "feature_cache")


def load_and_encode(kind, sources):
    """`evaluation_inputs.load_and_encode` with the parsed shared flags (call in `main()`).

    Args:
        kind: "labels" or "captions".
        sources: `{name: (data, builtin_split)}` (see the library function).

    Returns:
        `(clip, {name: features dict})`.
    """
    return evaluation_inputs.load_and_encode(
        FLAGS.preset, sources, FLAGS.data_format, kind,
        builtin_dir=FLAGS.builtin_dir or os.path.join(FLAGS.output_dir, "builtin_data"),
        builtin_settings={"num_train": FLAGS.builtin_train, "num_heldout": FLAGS.builtin_heldout},
        batch_size=FLAGS.batch_size, cache_dir=cache_dir(), max_examples=FLAGS.max_examples,
    )

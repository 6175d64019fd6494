r"""UniCL pretraining of Florence — the toolkit's main job.

With no flags it generates the built-in scenes, trains `florence_mini` (64 px, 2200 steps
of batch 64, AdamW at 5e-4 with a warm-up over the first 10% of the steps, logit-scale init 50;
each step reads one source: the scenes' captions or one attribute's captions, shape-heavy in
the first half, docs/training_science.md §3c) on a 2-core CPU
in under 10 minutes, evaluates what it learned — zero-shot shape, colour,
count and place on an in-distribution test split, zero-shot shape and shape+colour on
unseen shape-colour combinations, image<->text retrieval — prints the table (each score
beside its chance level), draws MODEL_DIR/loss_curve.png and writes a preset to
MODEL_DIR/preset (its metadata.json holds the command, settings, times and scores):

    python recipes/pretrain_unicl.py

A real run (Florence's three stages as flags; rerun the same command to resume):

    python recipes/pretrain_unicl.py --train_data='/data/cc/train-{0000..0999}.tar' --data_format=wds \
        --preset=florence_base --image_size=224 --steps=1260000 --global_batch_size=24576 \
        --strategy=multi_worker --precision=mixed_bfloat16 --gradient_cache_chunk=256 \
        --activation_checkpointing --augmented_texts_off_step=1000000 --high_resolution_step=1180000 \
        --model_dir=/runs/florence_base

Quote brace ranges (`'...{0000..0999}.tar'`): the recipe expands them itself, while an unquoted one is expanded
by the shell into many --train_data flags, which the recipe refuses (absl would keep only the last).

Tiny mode (what the tests run): --tiny.

MODEL_DIR/data_skips.json lists the records the input pipeline skipped, with their reasons.
"""

import json
import os
import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS

flags.DEFINE_list("train_data", ["builtin"], "'builtin' or data path(s) (comma-separated; globs, {000..009}).")
flags.DEFINE_enum("data_format", "csv", ["csv", "tsv", "csvlabel", "coco", "imagefolder", "wds", "tfrecord"],
                  "Format of --train_data.")
flags.DEFINE_string("preset", "florence_mini", "Architecture preset, preset directory or handle to start from.")
flags.DEFINE_integer("image_size", 64, "Training resolution.")
flags.DEFINE_integer("steps", 2200, "Optimizer steps.")
flags.DEFINE_integer("global_batch_size", 64, "Contrastive batch over all replicas.")
flags.DEFINE_string("model_dir", os.path.join("runs", "pretrain_unicl"),
                    "Run directory; the trained preset goes to MODEL_DIR/preset.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"], "tf.distribute strategy.")
flags.DEFINE_enum("precision", "auto", ["auto", "float32", "mixed_bfloat16", "mixed_float16"],
                  "Precision policy; auto: mixed_bfloat16 on a GPU/TPU or a CPU with native bf16 (avx512_bf16, "
                  "amx_bf16), float32 elsewhere.")
flags.DEFINE_float("learning_rate", 5e-4, "Peak learning rate (AdamW, warm-up + cosine).")
flags.DEFINE_integer("warmup_steps", None, "Linear warm-up steps (default: --warmup_fraction of --steps).")
flags.DEFINE_float("warmup_fraction", 0.1, "Linear warm-up as a fraction of --steps, when --warmup_steps is unset.")
flags.DEFINE_float("weight_decay", 0.1, "AdamW weight decay (not on norms, biases, logit scale).")
flags.DEFINE_float("end_learning_rate", 0.0, "Learning rate at the end of the cosine decay.")
flags.DEFINE_float("greyscale_probability", 0.0, "Fraction of training images made greyscale (their captions lose "
                   "colour words).")
flags.DEFINE_float("hard_negative_fraction", 0.0, "Share of each epoch ordered in groups of examples whose "
                   "captions share a word (in-batch hard negatives; csv/tsv/coco/imagefolder data).")
flags.DEFINE_list("builtin_sources", ["captions", "shape", "colour", "count", "place"],
                  "Built-in data: the sources the steps read, each step one (the scenes' captions, and one caption "
                  "set per attribute: 'a circle', 'a red object', 'two objects', 'an object on the left'); "
                  "'captions' alone trains on the captions as any other data (docs/training_science.md §3c).")
flags.DEFINE_list("source_weights", [], "One int per --builtin_sources: its share of the steps (default by name: "
                  "captions 2, shape 3, colour 1, count 2, place 1).")
flags.DEFINE_string("architecture_overrides", None, "JSON merged into the architecture preset's config, e.g. "
                    "'{\"logit_scale_init\": 50}' or '{\"image_encoder\": {\"window_size\": 8}}'.")
flags.DEFINE_integer("text_sequence_length", None, "Token ids per training text (longer texts are cut); default: "
                     "the preset's context (77), 32 for the built-in data. The preset keeps its full context.")
flags.DEFINE_list("first_source_weights", [], "With --builtin_sources: the weights of a first stage, one int per "
                  "source (default by name, shape-heavy: captions 0, shape 6, colour 1, count 2, place 0), then "
                  "--source_weights.")
flags.DEFINE_float("first_sources_fraction", 0.5, "Share of --steps for the --first_source_weights stage (0: none).")
flags.DEFINE_bool("builtin_labels", False, "Built-in data: also train on its image-label form (each scene's "
                  "nearest shape as a class, with prompt templates), as UniCL does: beside the captions, or first "
                  "with --labels_first_fraction.")
flags.DEFINE_float("labels_first_fraction", 0.0, "With --builtin_labels: this first share of --steps trains on the "
                   "labels alone (docs/training_science.md §3b).")
flags.DEFINE_bool("labels_after_first_stage", False, "With --labels_first_fraction: keep the labels beside the "
                  "captions after the label stage (default: the captions alone).")
flags.DEFINE_integer("hard_negative_group", 16, "Size of those groups (at most the per-replica batch).")
flags.DEFINE_integer("gradient_cache_chunk", None, "Per-replica gradient-cache chunk (default: off).")
flags.DEFINE_bool("activation_checkpointing", False, "Rematerialise blocks in the backward pass.")
flags.DEFINE_integer("checkpoint_every", 200, "Steps between checkpoints.")
flags.DEFINE_bool("deterministic", False, "Reproducible run: a killed and resumed run ends identical.")
flags.DEFINE_integer("seed", 0, "Seed of weights and data.")
flags.DEFINE_bool("prompt_augmented_texts", True, "Stage 1: wrap short texts in prompt templates.")
flags.DEFINE_integer("augmented_texts_off_step", None, "Stage 2 (no prompt-augmented texts) starts here.")
flags.DEFINE_integer("high_resolution_step", None, "Stage 3 (high resolution) starts here.")
flags.DEFINE_integer("high_resolution_image_size", 384, "Stage 3 resolution.")
flags.DEFINE_integer("builtin_train", 4000, "Built-in training scenes.")
flags.DEFINE_integer("builtin_heldout", 600, "Built-in held-out scenes (unseen shape-colour combinations).")
flags.DEFINE_integer("builtin_test", 1000, "Built-in in-distribution test scenes (seen combinations, unseen images).")
flags.DEFINE_enum("builtin_palette", "default", ["default", "alt"], "Built-in scenes' colours: 'default' (red, "
                  "green, blue, yellow, purple, orange, cyan, pink) or 'alt' (white, brown, lime, teal, navy, maroon, "
                  "magenta, gold: other names and RGB values). Held-out pairs, captions and evaluation follow it.")
flags.DEFINE_list("builtin_shapes", [], "Built-in scenes' shapes: a subset (>= 2) of circle, square, triangle, star, "
                  "ring, cross, diamond, hexagon; empty: all eight. Held-out pairs, captions and evaluation follow it.")
flags.DEFINE_float("dense_aux_weight", 0.0, "Built-in data: weight of a dense-label loss beside UniCL (a linear "
                   "head on the image map predicts which shape and colour is where and what is partly hidden; "
                   "pretraining only, not in the preset). 0: UniCL alone.")
flags.DEFINE_bool("evaluate", True, "Evaluate on the built-in test splits.")
flags.DEFINE_bool("tiny", False, "Smoke-test mode: a few steps on a few scenes.")


def resolve_warmup_steps(steps, warmup_steps=None, warmup_fraction=0.1):
    """Warm-up steps: `warmup_steps` when given, else `warmup_fraction` of `steps` (at least 1).

    A fraction keeps the warm-up in proportion when the run is longer or shorter: the encoder's residual stream
    blows up when the peak rate arrives within a few dozen steps (docs/training_science.md).

    Example:
    >>> resolve_warmup_steps(1200), resolve_warmup_steps(1200, warmup_steps=50), resolve_warmup_steps(4)
    (120, 50, 1)
    """
    if not 0.0 <= warmup_fraction < 1.0:
        raise app.UsageError(f"--warmup_fraction must be in [0, 1). Received: {warmup_fraction}")
    if warmup_steps is not None:
        return warmup_steps
    return max(1, int(round(warmup_fraction * steps)))


def _json_flag(name, value):
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as error:
        raise app.UsageError(f"--{name} must be a JSON object: {error}") from None
    if not isinstance(parsed, dict):
        raise app.UsageError(f"--{name} must be a JSON object. Received: {value}")
    return parsed


def _source_weights(values):
    try:
        return tuple(int(value) for value in values)
    except ValueError:
        raise app.UsageError(f"Source weights must be integers. Received: {values}") from None


def main(argv):
    del argv
    if FLAGS["train_data"].present > 1:
        raise app.UsageError(
            f"--train_data was given {FLAGS['train_data'].present} times; only the last would be used. An unquoted "
            "brace range (train-{0000..0999}.tar) is expanded by the shell into one flag per file: quote it, or "
            "join paths with commas."
        )
    from florence_keras.evaluation.heldout_evaluation import builtin_table
    from florence_keras.evaluation.heldout_evaluation import evaluate_builtin
    from florence_keras.training.pretrain_unicl import pretrain_unicl

    warmup_steps = resolve_warmup_steps(FLAGS.steps, FLAGS.warmup_steps, FLAGS.warmup_fraction)
    settings = dict(
        model_dir=FLAGS.model_dir,
        train_data="builtin" if FLAGS.train_data == ["builtin"] else FLAGS.train_data,
        data_format=FLAGS.data_format, preset=FLAGS.preset, image_size=FLAGS.image_size, steps=FLAGS.steps,
        global_batch_size=FLAGS.global_batch_size, strategy=FLAGS.strategy, precision=FLAGS.precision,
        learning_rate=FLAGS.learning_rate, warmup_steps=warmup_steps, weight_decay=FLAGS.weight_decay,
        end_learning_rate=FLAGS.end_learning_rate, greyscale_probability=FLAGS.greyscale_probability,
        hard_negative_fraction=FLAGS.hard_negative_fraction, hard_negative_group=FLAGS.hard_negative_group,
        builtin_labels=FLAGS.builtin_labels, labels_first_fraction=FLAGS.labels_first_fraction,
        labels_after_first_stage=FLAGS.labels_after_first_stage,
        builtin_sources=tuple(FLAGS.builtin_sources), source_weights=_source_weights(FLAGS.source_weights) or None,
        architecture_overrides=_json_flag("architecture_overrides", FLAGS.architecture_overrides),
        text_sequence_length=FLAGS.text_sequence_length,
        first_source_weights=_source_weights(FLAGS.first_source_weights) or None,
        first_sources_fraction=FLAGS.first_sources_fraction,
        gradient_cache_chunk=FLAGS.gradient_cache_chunk, activation_checkpointing=FLAGS.activation_checkpointing,
        checkpoint_every=FLAGS.checkpoint_every, deterministic=FLAGS.deterministic, seed=FLAGS.seed,
        prompt_augmented_texts=FLAGS.prompt_augmented_texts,
        augmented_texts_off_step=FLAGS.augmented_texts_off_step,
        high_resolution_step=FLAGS.high_resolution_step,
        high_resolution_image_size=FLAGS.high_resolution_image_size,
        builtin_train=FLAGS.builtin_train, builtin_heldout=FLAGS.builtin_heldout, builtin_test=FLAGS.builtin_test,
        builtin_palette=FLAGS.builtin_palette, builtin_shapes=FLAGS.builtin_shapes or None,
        dense_aux_weight=FLAGS.dense_aux_weight,
        evaluate=evaluate_builtin if FLAGS.evaluate else None,
        command=" ".join(["python", "recipes/pretrain_unicl.py"] + sys.argv[1:]),
    )
    if FLAGS.tiny:
        settings.update(steps=4, global_batch_size=8, builtin_train=64, builtin_heldout=32, builtin_test=32,
                        warmup_steps=1, checkpoint_every=2)
    result = pretrain_unicl(**settings)
    train = result["train"]
    if train["loss"] is None:  # the run in --model_dir had already finished: nothing trained
        print(f"\n{FLAGS.model_dir} already holds a finished run of {train['step']} steps: nothing to train "
              "(use another --model_dir to train again).")
    else:
        print(f"\nTrained {train['step']} steps in {result['seconds']:.0f} s (final loss {train['loss']:.4f}); "
              f"skipped examples: {result['skipped_examples']}")
    if result["skipped_examples"]:
        print(f"Skipped records by reason: {result['skipped_records_by_reason']} "
              f"(details: {result['skip_report']})")
    if result["preset_dir"]:
        print(f"Preset: {result['preset_dir']}")
    if result["loss_curve"]:
        print(f"Loss curve: {result['loss_curve']} (TensorBoard scalars: {os.path.join(FLAGS.model_dir, 'tensorboard')})")
    if result["seconds"] is not None:
        print(f"Wall time {result['seconds']:.0f} s, process CPU time {result['cpu_seconds']:.0f} s "
              f"({os.cpu_count()} CPUs visible)")
    if result["scores"]:
        print("\nWhat the model learned (built-in test splits; zero-shot = text prompts only):\n")
        print(builtin_table(result["scores"]))
        with open(os.path.join(FLAGS.model_dir, "scores.json"), "w", encoding="utf-8") as f:
            json.dump(result["scores"], f, indent=2)


if __name__ == "__main__":
    app.run(main)

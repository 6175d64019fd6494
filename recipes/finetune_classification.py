r"""Fine-tune classification (SPEC §4): Florence's UniCL head (class-name text embeddings) or a linear head.

Run (Florence's way: the UniCL loss with class names in prompt templates; layer-wise lr decay 0.8):
  python recipes/finetune_classification.py --preset=PRESET --data=/data/train --test_data=/data/val \
      --data_format=imagefolder --head=unicl --layer_decay=0.8 --steps=5000 --batch_size=256 \
      --output_dir=/tmp/finetune

A plain Dense head with cross-entropy instead: --head=linear. On the built-in scenes (shape classes; the test
split is the held-out one, whose shape-colour pairs never occur in training):
  python recipes/finetune_classification.py --preset=florence_mini_builtin --data=builtin --output_dir=/tmp/ft

Tiny mode (smoke test: a few steps on little data; the tests pass a tiny random preset directory):
  python recipes/finetune_classification.py --tiny --preset=florence_mini_builtin --data=builtin \
      --output_dir=/tmp/ft_tiny

Training runs on pretraining's loop (`FineTuneTrainer`, a `UniCLTrainer`): rerunning the same command resumes from
`<output_dir>/checkpoints`. Writes `finetune_classification.json`, `finetune_classification.md`,
`confusion_matrix.png` (the fine-tuned model on the test split) and the fine-tuned model as a
`FlorenceImageClassifier` preset `<output_dir>/preset` (class names, head and weights; its `metadata.json` holds
how it was trained and its held-out top-1, written here): load it with
`florence_keras.FlorenceImageClassifier.from_preset`, serve it with `recipes/export_saved_model.py`. The starting
model's zero-shot score on the same split is reported next to the fine-tuned one.

AdamW: `--learning_rate`, `--warmup_steps`, `--weight_decay` override fine-tuning's defaults
(`florence_keras.training.FINETUNE_ADAMW`: 3e-4, 20, 0.05; β2 0.999, ε 1e-8, as BEiT / Swin fine-tuning).
"""

import os
import sys

from absl import app
from absl import flags

flags.DEFINE_string("preset", "florence_mini_builtin", "Preset name, preset directory or handle to start from.")
flags.DEFINE_bool("tiny", False, "Smoke-test mode: a few steps on little data (any --preset).")
flags.DEFINE_enum("head", "unicl", ["unicl", "linear"], "unicl: class-name text embeddings (Florence); linear.")
flags.DEFINE_list("data", ["builtin"], "'builtin' or training data path(s).")
flags.DEFINE_list("test_data", None, "Held-out test data path(s) (default for builtin: its held-out split).")
flags.DEFINE_enum("data_format", "imagefolder", ["imagefolder", "csvlabel"], "Image-label data format.")
flags.DEFINE_string("output_dir", None, "Run directory: checkpoints, results, the fine-tuned preset.", required=True)
flags.DEFINE_integer("steps", 400, "Optimizer steps.")
flags.DEFINE_integer("batch_size", 32, "Global batch size.")
flags.DEFINE_float("learning_rate", None, "Peak learning rate (AdamW, warm-up + cosine); default FINETUNE_ADAMW's.")
flags.DEFINE_integer("warmup_steps", None, "Linear warm-up steps; default FINETUNE_ADAMW's.")
flags.DEFINE_float("weight_decay", None, "AdamW weight decay (not on norms, biases, logit scale); default "
                   "FINETUNE_ADAMW's.")
flags.DEFINE_float("layer_decay", 0.8, "Layer-wise learning-rate decay in (0, 1]; 1 disables it.")
flags.DEFINE_string("templates", "default", "default (8 templates), imagenet80, imagenet7, or a file.")
flags.DEFINE_integer("image_size", None, "Training resolution (default: the preset's).")
flags.DEFINE_bool("augment", True, "Random-resized-crop and flip on training images.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"], "tf.distribute strategy.")
flags.DEFINE_enum("precision", "auto", ["auto", "float32", "mixed_bfloat16", "mixed_float16"],
                  "Precision policy; auto: mixed_bfloat16 on a GPU/TPU or a CPU with native bf16 (avx512_bf16, "
                  "amx_bf16), float32 elsewhere.")
flags.DEFINE_integer("checkpoint_every", 100, "Steps between checkpoints.")
flags.DEFINE_bool("deterministic", False, "Reproducible run: a killed and resumed run ends identical.")
flags.DEFINE_integer("seed", 0, "Seed of weights, data and the built-in scenes.")
flags.DEFINE_string("builtin_dir", None, "Where the built-in data is written/reused (default <output_dir>/data).")
flags.DEFINE_integer("builtin_train", 4000, "Built-in training scenes.")
flags.DEFINE_integer("builtin_heldout", 600, "Built-in held-out scenes.")
flags.DEFINE_integer("eval_batch_size", 64, "Images per evaluation batch.")
flags.DEFINE_integer("max_eval_examples", None, "Evaluate at most this many test images.")

FLAGS = flags.FLAGS
_SETTINGS = (
    "preset", "tiny", "head", "data", "test_data", "data_format", "steps", "batch_size", "learning_rate",
    "warmup_steps", "weight_decay", "layer_decay", "templates", "image_size", "augment", "strategy", "precision",
    "deterministic", "seed", "builtin_train", "builtin_heldout", "max_eval_examples",
)
# --tiny changes these unless they are given explicitly.
_TINY = {"steps": 24, "batch_size": 16, "warmup_steps": 2, "learning_rate": 1e-3, "builtin_train": 96,
         "builtin_heldout": 48, "checkpoint_every": 12}


def _templates(spec):
    from florence_keras.data import labels
    from florence_keras.evaluation import zero_shot

    return labels.DEFAULT_TEMPLATES if spec == "default" else tuple(zero_shot.load_templates(spec))


def _setting(name):
    if FLAGS.tiny and name in _TINY and not FLAGS[name].present:
        return _TINY[name]
    return FLAGS[name].value


def _evaluate(classifier, paths, data_format, class_names, ks=(1, 5), batch_size=64, max_examples=None,
              verbose=True):
    """Top-k, per-class accuracy and confusion matrix of a `FlorenceImageClassifier` on a test split.

    `class_names` are the training data's (the classifier's classes, in id order); the test split's class names
    must be among them.
    """
    import numpy as np
    import tensorflow as tf

    from florence_keras.data.skip_counter import SkipCounter
    from florence_keras.evaluation import encoded_data
    from florence_keras.evaluation import features
    from florence_keras.evaluation import metrics

    counter = SkipCounter(name="test data")
    converter = classifier.preprocessor.image_converter
    dataset = encoded_data.eval_image_dataset(paths, data_format, int(max(converter.image_size)), batch_size,
                                              max_examples, skip_counter=counter)
    normalize = converter.normalizer()
    encoded = features.encode_image_dataset(
        lambda images: classifier(tf.cast(normalize(images), tf.float32), training=False), dataset,
        keep_keys=("class_names",), verbose=verbose)
    if counter.count:
        print(counter.summary())
    lookup = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({str(name) for name in encoded["class_names"]} - set(lookup))
    if unknown:
        raise ValueError(f"The test data has classes the training data lacks: {unknown[:5]}")
    labels = np.array([lookup[str(name)] for name in encoded["class_names"]], np.int64)
    ks = tuple(k for k in ks if k <= len(class_names)) or (1,)
    return metrics.classification_metrics(np.asarray(encoded["features"]), labels, ks=ks,
                                          class_names=list(class_names))


def main(argv):
    del argv
    import dataclasses
    import time

    from florence_keras.evaluation import plots
    from florence_keras.evaluation import reporting
    from florence_keras.models import preset_directory
    from florence_keras.training import FINETUNE_ADAMW
    from florence_keras.training.classification_finetune import finetune_classification
    from florence_keras.training.classification_finetune import load_classifier
    from florence_keras.training.classification_finetune import resolve_classification_data

    start = time.time()
    templates = _templates(FLAGS.templates)
    data = resolve_classification_data(
        FLAGS.output_dir, train_data="builtin" if FLAGS.data == ["builtin"] else FLAGS.data,
        test_data=FLAGS.test_data, data_format=FLAGS.data_format, builtin_dir=FLAGS.builtin_dir,
        builtin_train=_setting("builtin_train"), builtin_heldout=_setting("builtin_heldout"), seed=FLAGS.seed)
    class_names = data["class_names"]
    eval_kwargs = dict(batch_size=FLAGS.eval_batch_size, max_examples=FLAGS.max_eval_examples)
    # The starting model's zero-shot score: the UniCL head's classifier from the preset's text tower.
    before = _evaluate(load_classifier(FLAGS.preset, class_names, head="unicl", templates=templates,
                                       image_size=FLAGS.image_size),
                       data["test_data"], data["data_format"], class_names, **eval_kwargs)
    optimizer = FINETUNE_ADAMW.replace(learning_rate=_setting("learning_rate"),
                                       warmup_steps=_setting("warmup_steps"), weight_decay=FLAGS.weight_decay)
    result = finetune_classification(
        FLAGS.output_dir, data, preset=FLAGS.preset, head=FLAGS.head, image_size=FLAGS.image_size,
        steps=_setting("steps"), global_batch_size=_setting("batch_size"), optimizer=optimizer,
        layer_decay=FLAGS.layer_decay, templates=templates, augment=FLAGS.augment, strategy=FLAGS.strategy,
        precision=FLAGS.precision, checkpoint_every=_setting("checkpoint_every"), deterministic=FLAGS.deterministic,
        seed=FLAGS.seed, command=" ".join(["python", "recipes/finetune_classification.py"] + sys.argv[1:]),
    )
    if result["classifier"] is None:
        print(f"Stopped at step {result['train']['step']} (preempted, or not the chief); rerun to resume.")
        return
    after = _evaluate(result["classifier"], data["test_data"], data["data_format"], class_names, **eval_kwargs)
    # The code that scored the model writes its score into the preset (re-signing the manifest).
    test_data = data["test_data"]
    preset_directory.update_metadata(result["preset_dir"], {
        "heldout_top1": float(after["top1"]),
        "heldout_data": test_data if isinstance(test_data, str) else [str(p) for p in test_data]})
    seconds = time.time() - start
    ks = sorted(int(key[3:]) for key in after if key.startswith("top") and key[3:].isdigit())
    rows = []
    for label, scores in (("start (zero-shot)", before), (f"fine-tuned ({FLAGS.head} head)", after)):
        row = {"model": label}
        row.update({f"top-{k} (%)": reporting.percent(scores[f"top{k}"]) for k in ks})
        row["mean per-class (%)"] = reporting.percent(scores["mean_per_class_accuracy"])
        rows.append(row)
    summary = {
        "preset": FLAGS.preset, "head": FLAGS.head, "steps": result["train"]["step"], "batch": _setting("batch_size"),
        "layer decay": FLAGS.layer_decay, "classes": len(class_names), "test images": after["num_examples"],
        "final loss": result["train"]["loss"], "train seconds": result["train_seconds"], "seconds": seconds,
    }
    per_class = [
        {"class": name, "images": count, "top-1 (%)": reporting.percent(accuracy),
         "zero-shot top-1 (%)": reporting.percent(before["per_class_accuracy"][i])}
        for i, (name, count, accuracy) in enumerate(zip(class_names, after["class_counts"],
                                                        after["per_class_accuracy"]))
    ]
    multipliers = [{"variables": group, "lr multiplier": f"{value:.4g}"}
                   for group, value in result["lr_multipliers"]["groups"].items()]
    results = {
        "after": {k: v for k, v in after.items() if k != "predictions"},
        "before": {k: v for k, v in before.items() if k != "predictions"},
        "class_names": class_names, "train": result["train"], "preset_dir": result["preset_dir"],
        "lr_multipliers": result["lr_multipliers"], "seconds": seconds, "train_seconds": result["train_seconds"],
        "skipped_examples": result["skipped_examples"], "optimizer": dataclasses.asdict(optimizer),
        "settings": {name: FLAGS[name].value for name in _SETTINGS},
        "effective_settings": {name: _setting(name) for name in _TINY},
        "train_data": data["train_data"], "test_data": data["test_data"], "data_format": data["data_format"],
        "image_size": result["image_size"], "templates": list(templates),
    }
    paths = reporting.write_report(
        FLAGS.output_dir, "finetune_classification", "Fine-tuned classification", results,
        [("Summary", reporting.markdown_table([summary])),
         ("Test split: start vs fine-tuned", reporting.markdown_table(rows)),
         ("Per class", reporting.markdown_table(per_class)),
         ("Layer-wise learning-rate multipliers (first variable of each layer group)",
          reporting.markdown_table(multipliers))],
    )
    plots.plot_confusion_matrix(after["confusion_matrix"], class_names,
                                os.path.join(FLAGS.output_dir, "confusion_matrix.png"),
                                title=f"Fine-tuned ({FLAGS.head} head) confusion matrix")
    print(reporting.markdown_table([summary]))
    print()
    print(reporting.markdown_table(rows))
    print(f"\nWrote {paths['markdown']} and the preset {result['preset_dir']}")


if __name__ == "__main__":
    app.run(main)

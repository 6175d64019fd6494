"""Classification fine-tuning (SPEC §4): data, a `FlorenceImageClassifier` Task, `FineTuneTrainer`, a preset.

The library side of `recipes/finetune_classification.py`: every setting is a plain keyword argument. The Task
owns the head and its loss:

* `"unicl"` — Florence's: keep the UniCL loss; the texts are the class names in prompt templates (one drawn per
  read) and the labels are class ids, so the images of a class are positives of each other. After training the
  classifier's class embeddings (prompt-ensembled class-name text embeddings) are re-computed with the tuned text
  tower, exactly as a zero-shot classifier is built.
* `"linear"` — a Dense head on the pooled CoSwin features, softmax cross-entropy.

Both train on `UniCLTrainer`'s code path (`FineTuneTrainer`): one custom loop for every strategy, checkpoints,
exact resume with `deterministic=True`, AdamW + warm-up cosine (`FINETUNE_ADAMW` unless given), plus layer-wise
learning-rate decay. The result is saved as a `FlorenceImageClassifier` preset (`MODEL_DIR/preset`), which
`FlorenceImageClassifier.from_preset` loads and the export's `classify` signature serves. Scoring it on held-out
data is the evaluation library's job (the recipe does it); this module imports no evaluation code.
"""

import dataclasses
import logging
import os
import time

import tensorflow as tf

from florence_keras.data import labels as labels_lib
from florence_keras.data.csv_index import read_csv_index
from florence_keras.data.image_folder_index import list_image_folder
from florence_keras.data.skip_counter import SkipCounter
from florence_keras.models import preset_registry
from florence_keras.models.florence_image_classifier import FlorenceImageClassifier
from florence_keras.training.finetune_trainer import FineTuneTrainer
from florence_keras.training.image_text_input import make_image_text_input_fn
from florence_keras.training.optimizer_factory import FINETUNE_ADAMW
from florence_keras.training.precision_choice import resolve_precision
from florence_keras.training.training_stage import TrainingStage

logger = logging.getLogger(__name__)

BUILTIN = "builtin"
DATA_FORMATS = ("imagefolder", "csvlabel")
HEADS = ("unicl", "linear")


def _as_list(paths):
    if isinstance(paths, (str, os.PathLike)):
        return [p.strip() for p in os.fspath(paths).split(",") if p.strip()]
    return [os.fspath(p) for p in paths]


def training_class_names(paths, data_format):
    """Sorted class names of image-label data, read from the index only (no image is decoded).

    Args:
        paths: ImageFolder roots or `filepath,label` CSV files (comma-separated str or list).
        data_format: "imagefolder" or "csvlabel".

    Returns:
        sorted list of str.
    """
    if data_format not in DATA_FORMATS:
        raise ValueError(f"`data_format` must be one of {DATA_FORMATS}. Received: data_format={data_format!r}")
    names = set()
    for path in _as_list(paths):
        if data_format == "imagefolder":
            names.update(list_image_folder(path)[2])
        else:
            names.update(read_csv_index(path, ("filepath", "label"))[1])
    # Labels that are empty or not valid UTF-8 (kept as lone surrogates by read_csv_index) name no class: the
    # input pipeline skips and counts their records (`no_text`, `bad_text`).
    names = {name for name in names if _is_utf8(name)}
    if len(names) < 2:
        raise ValueError(f"Classification needs at least 2 classes. Received: {sorted(names)} in {paths!r}")
    return sorted(names)


def _is_utf8(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return bool(text)


def class_index_labels(labels, class_names):
    """Maps UniCL class hash keys (`labels.class_label`) to indices into `class_names` (a TF op for tf.data)."""
    keys = labels_lib.class_label(list(class_names))
    matches = tf.equal(tf.expand_dims(labels, -1), keys)
    return tf.argmax(tf.cast(matches, tf.int32), axis=-1, output_type=tf.int64)


def prompt_class_names(class_names):
    """The classifier's class names: the data's, with underscores as spaces (what the training prompts say,
    `florence_keras.data.labels.prompt_class_name`)."""
    return [name.replace("_", " ") for name in class_names]


def resolve_classification_data(output_dir, train_data=BUILTIN, test_data=None, data_format="imagefolder",
                                builtin_dir=None, builtin_train=4000, builtin_heldout=600, seed=0):
    """The training and held-out data of a fine-tune, and the training classes.

    Args:
        output_dir: the run directory (the built-in data goes to `output_dir/data` unless `builtin_dir`).
        train_data: "builtin" (the built-in scenes: shape classes; tested on the held-out split, whose
            shape-colour pairs never occur in training) or image-label path(s) in `data_format`.
        test_data: image-label path(s); required unless `train_data="builtin"`.
        data_format: "imagefolder" or "csvlabel" (`filepath,label`).
        builtin_dir, builtin_train, builtin_heldout, seed: the built-in data (64 px scenes, seed `seed`).

    Returns:
        dict: `train_data`, `test_data`, `data_format`, `class_names` (sorted training classes).
    """
    if train_data == BUILTIN:
        from florence_keras.data.builtin_dataset import ensure_builtin_dataset

        builtin = ensure_builtin_dataset(builtin_dir or os.path.join(output_dir, "data"), builtin_train,
                                         builtin_heldout, 64, seed)
        train_data, data_format = builtin["imagefolder"]["train"], "imagefolder"
        test_data = test_data or builtin["imagefolder"]["heldout"]
    if not test_data:
        raise ValueError("Give held-out test data (`test_data`), or use the built-in data.")
    return {"train_data": train_data, "test_data": test_data, "data_format": data_format,
            "class_names": training_class_names(train_data, data_format)}


def load_classifier(preset, class_names, head="unicl", templates=labels_lib.DEFAULT_TEMPLATES, image_size=None,
                    load_weights=True):
    """A `FlorenceImageClassifier` from any Florence preset (`FlorenceImageClassifier.from_preset`).

    Args:
        preset: preset name, directory or handle (an architecture preset is randomly initialised at
            `image_size`, default 224).
        class_names: the data's class names (underscores are shown as spaces in the prompts and names).
        head: "unicl" (the class embeddings are computed from the preset's text tower: the zero-shot
            classifier) or "linear" (a zero-initialised Dense head).
        templates: the UniCL head's prompt templates.
        image_size: resolution of an architecture preset; trained presets keep theirs.
        load_weights: bool (see `FlorenceImageClassifier.from_preset`).
    """
    kwargs = {"class_names": prompt_class_names(class_names), "head": head, "templates": list(templates)}
    if image_size is not None and preset_registry.resolve(preset).kind == "architecture":
        kwargs["image_size"] = image_size
    return FlorenceImageClassifier.from_preset(preset, load_weights=load_weights, **kwargs)


def finetune_classification(
    output_dir,
    data,
    preset="florence_mini_builtin",
    head="unicl",
    image_size=None,
    steps=400,
    global_batch_size=32,
    optimizer=None,
    layer_decay=0.8,
    templates=labels_lib.DEFAULT_TEMPLATES,
    augment=True,
    strategy="default",
    precision="float32",
    checkpoint_every=100,
    deterministic=False,
    seed=0,
    command=None,
    verbose=1,
):
    """Fine-tunes a `FlorenceImageClassifier` from `preset` and saves it as `output_dir/preset`.

    Rerunning with the same `output_dir` resumes from `output_dir/checkpoints`.

    Args:
        output_dir: run directory (checkpoints, TensorBoard logs, the fine-tuned preset).
        data: `resolve_classification_data`'s dict (training data, format and classes).
        preset: preset name, directory or handle to start from.
        head: "unicl" (Florence) or "linear".
        image_size: training resolution of an architecture preset (trained presets keep theirs).
        steps, global_batch_size: optimizer steps and batch.
        optimizer: an `AdamWConfig`; defaults to `FINETUNE_ADAMW` (BEiT / Swin fine-tuning's AdamW).
        layer_decay: layer-wise learning-rate decay in (0, 1] (1.0: off).
        templates: prompt templates of the class names (training texts and the UniCL classifier).
        augment: random-resized-crop + flip on training images.
        strategy, precision, checkpoint_every, deterministic, seed: as in pretraining (precision may be "auto").
        command: the command line, stored in the preset's metadata.
        verbose: progress bar.

    Returns:
        dict: `classifier` (the fine-tuned `FlorenceImageClassifier`, None on a non-chief worker or when
        preempted), `train` (trainer result), `preset_dir` (None when not saved), `lr_multipliers` (min/max and
        per layer group), `image_size`, `train_seconds`, `skipped_examples`.
    """
    if head not in HEADS:
        raise ValueError(f"`head` must be one of {HEADS}. Received: head={head!r}")
    optimizer = FINETUNE_ADAMW if optimizer is None else optimizer
    os.makedirs(output_dir, exist_ok=True)
    class_names = data["class_names"]
    templates = tuple(templates)
    labels_lib.validate_templates(templates)

    def model_fn():
        return load_classifier(preset, class_names, head=head, templates=templates, image_size=image_size)

    # The preprocessor and resolution of the data pipeline: the preset's (loaded without weights).
    preprocessor = load_classifier(preset, class_names, head="linear", image_size=image_size,
                                   load_weights=False).preprocessor
    train_size = int(max(preprocessor.image_converter.image_size))
    skips = SkipCounter(name="training data")
    base_dataset = make_image_text_input_fn(data["train_data"], data["data_format"], preprocessor,
                                            augment=augment, templates=templates, skip_counter=skips)

    def make_dataset(request):
        # The pipeline's labels are class hash keys; the Task's are class ids (either head).
        return base_dataset(request).map(lambda b: dict(b, labels=class_index_labels(b["labels"], class_names)))

    trainer = FineTuneTrainer(
        model_fn, make_dataset, layer_decay=layer_decay, optimizer=optimizer, model_dir=output_dir,
        total_steps=steps, global_batch_size=global_batch_size, strategy=strategy,
        precision=resolve_precision(precision),
        stages=[TrainingStage("finetune", 0, train_size, prompt_augmented_texts=False)], image_size=train_size,
        checkpoint_every=checkpoint_every, deterministic=deterministic, seed=seed, verbose=verbose,
    )
    train_start = time.time()
    train_result = trainer.fit()
    train_seconds = time.time() - train_start
    if skips.count:
        logger.warning("%s", skips.summary())
    result = {"classifier": None, "train": train_result, "preset_dir": None, "train_seconds": train_seconds,
              "skipped_examples": skips.count, "lr_multipliers": _multiplier_summary(trainer),
              "image_size": train_size}
    if not trainer.is_chief or train_result.get("preempted"):
        return result
    classifier = trainer.model
    if head == "unicl":
        classifier.update_class_embeddings()  # the class names through the tuned text tower
    preset_dir = os.path.join(output_dir, "preset")
    classifier.save_to_preset(preset_dir, metadata={
        "finetune_classification": {
            "command": command, "start_preset": str(preset), "head": head, "data_class_names": list(class_names),
            "templates": list(templates), "steps": train_result["step"], "global_batch_size": global_batch_size,
            "optimizer": dataclasses.asdict(optimizer),
            "layer_decay": layer_decay, "image_size": train_size, "final_loss": train_result["loss"],
        }})
    result.update(classifier=classifier, preset_dir=preset_dir)
    return result


def _multiplier_summary(trainer):
    groups = {}
    for variable, multiplier in zip(trainer.model.trainable_variables, trainer.lr_multipliers):
        group = variable.path.split("/")[0]
        groups.setdefault(group, multiplier)
    values = list(trainer.lr_multipliers)
    return {"min": min(values), "max": max(values), "groups": groups}

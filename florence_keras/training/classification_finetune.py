"""Classification fine-tuning end to end (SPEC §4): data, `FineTuneTrainer`, held-out evaluation, a preset.

The library side of `recipes/finetune_classification.py` (which only parses flags and writes the report): every
setting is a plain keyword argument. Two heads:

* `"unicl"` — Florence's: keep the UniCL loss; the texts are the class names in prompt templates (one drawn per
  read) and the labels are class hash keys, so the images of a class are positives of each other. At evaluation
  the classifier is the prompt-ensembled class-name text embeddings, exactly as in zero-shot classification.
* `"linear"` — a Dense head on the pooled CoSwin features, softmax cross-entropy.

Both train on `UniCLTrainer`'s code path (`FineTuneTrainer`): one custom loop for every strategy, checkpoints,
exact resume with `deterministic=True`, AdamW + warm-up cosine, plus layer-wise learning-rate decay.
"""

import json
import logging
import os
import time

import numpy as np
import tensorflow as tf

from florence_keras.data import labels as labels_lib
from florence_keras.data.csv_index import read_csv_index
from florence_keras.data.image_folder_index import list_image_folder
from florence_keras.data.skip_counter import SkipCounter
from florence_keras.training.finetune_trainer import FineTuneTrainer
from florence_keras.training.image_text_input import make_image_text_input_fn
from florence_keras.training.linear_head_classifier import LinearHeadClassifier
from florence_keras.training.training_stage import TrainingStage

logger = logging.getLogger(__name__)

BUILTIN = "builtin"
DATA_FORMATS = ("imagefolder", "csvlabel")


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


def _load_clip(preset, image_size):
    from florence_keras.models import preset_registry
    from florence_keras.models.florence_clip import FlorenceCLIP

    if preset_registry.resolve(preset).kind == "architecture":  # random init at the published size
        clip = FlorenceCLIP.from_preset(preset, image_size=image_size)
        clip.preprocessor = preset_registry.build_architecture_preprocessor(preset, image_size)
        return clip
    return FlorenceCLIP.from_preset(preset)


def _encode_test_split(encode, clip, paths, data_format, class_names, batch_size, max_examples, verbose):
    """Runs `encode(normalised float images) -> [B, K]` over the test split; returns (outputs, label indices)."""
    from florence_keras.evaluation import encoded_data
    from florence_keras.evaluation import features as features_lib

    counter = SkipCounter(name="test data")
    size = encoded_data.model_image_size(clip)
    dataset = encoded_data.eval_image_dataset(paths, data_format, size, batch_size, max_examples,
                                              skip_counter=counter)
    normalize = clip.preprocessor.image_converter.normalizer()
    encoded = features_lib.encode_image_dataset(
        lambda images: encode(tf.cast(normalize(images), tf.float32)), dataset, keep_keys=("class_names",),
        verbose=verbose,
    )
    if counter.count:
        logger.warning("%s", counter.summary())
    lookup = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({str(name) for name in encoded["class_names"]} - set(lookup))
    if unknown:
        raise ValueError(f"The test data has classes the training data lacks: {unknown[:5]}")
    return encoded["features"], np.array([lookup[str(name)] for name in encoded["class_names"]], np.int64)


def evaluate_classifier(clip, paths, data_format, class_names, head_model=None, templates=labels_lib.DEFAULT_TEMPLATES,
                        ks=(1, 5), batch_size=64, max_examples=None, verbose=True):
    """Top-k, per-class accuracy and confusion matrix of a fine-tuned (or the initial) model on a test split.

    Args:
        clip: the `FlorenceCLIP` (its backbone holds the current weights).
        paths, data_format: the test data (image-label).
        class_names: the training classes (index order of the labels and scores).
        head_model: a `LinearHeadClassifier` (scores = its logits), or None for the UniCL head (scores = cosine
            with the prompt-ensembled class-name embeddings, the zero-shot classifier).
        templates: prompt templates of the UniCL head.
        ks: reported top-k accuracies (k larger than the class count is dropped).
        batch_size, max_examples, verbose: encoding settings.

    Returns:
        the dict of `florence_keras.evaluation.metrics.classification_metrics`.
    """
    from florence_keras.evaluation import metrics
    from florence_keras.evaluation import zero_shot

    ks = tuple(k for k in ks if k <= len(class_names)) or (1,)
    if head_model is not None:
        scores, labels = _encode_test_split(lambda x: head_model.classify(x), clip, paths, data_format, class_names,
                                            batch_size, max_examples, verbose)
    else:
        features, labels = _encode_test_split(lambda x: clip.backbone.embed_images(x), clip, paths, data_format,
                                              class_names, batch_size, max_examples, verbose)
        classifier = zero_shot.build_zero_shot_classifier(
            clip.encode_texts, zero_shot.readable_class_names(class_names), templates,
            batch_size=len(class_names) * len(templates),
        )
        scores = zero_shot.zero_shot_scores(features, classifier)
    return metrics.classification_metrics(np.asarray(scores), labels, ks=ks, class_names=list(class_names))


def finetune_classification(
    output_dir,
    train_data=BUILTIN,
    test_data=None,
    data_format="imagefolder",
    preset="florence_mini_builtin",
    head="unicl",
    image_size=None,
    steps=400,
    global_batch_size=32,
    learning_rate=3e-4,
    warmup_steps=20,
    weight_decay=0.05,
    layer_decay=0.8,
    templates=labels_lib.DEFAULT_TEMPLATES,
    augment=True,
    strategy="default",
    precision="float32",
    checkpoint_every=100,
    deterministic=False,
    seed=0,
    builtin_dir=None,
    builtin_train=4000,
    builtin_heldout=600,
    eval_batch_size=64,
    max_eval_examples=None,
    evaluate_before=True,
    command=None,
    verbose=1,
):
    """Fine-tunes a FlorenceCLIP for classification and scores it on a held-out split.

    Args:
        output_dir: run directory (checkpoints, TensorBoard logs, built-in data, the fine-tuned preset).
        train_data: "builtin" (the built-in scenes: shape classes; tested on the held-out split, whose
            shape-colour pairs never occur in training) or image-label path(s) in `data_format`.
        test_data: image-label path(s); required unless `train_data="builtin"`.
        data_format: "imagefolder" or "csvlabel" (`filepath,label`).
        preset: preset name, directory or handle to start from.
        head: "unicl" (Florence) or "linear".
        image_size: training resolution; None uses the preset's (required for architecture presets).
        steps, global_batch_size: optimizer steps and batch.
        learning_rate, warmup_steps, weight_decay: AdamW with warm-up + cosine decay.
        layer_decay: layer-wise learning-rate decay in (0, 1] (1.0: off).
        templates: prompt templates of the class names (training texts and the UniCL classifier).
        augment: random-resized-crop + flip on training images.
        strategy, precision, checkpoint_every, deterministic, seed: as in pretraining.
        builtin_dir: where the built-in data is written / reused (default `output_dir/data`).
        builtin_train, builtin_heldout: built-in dataset sizes (64 px, seed `seed`).
        eval_batch_size, max_eval_examples: evaluation encoding.
        evaluate_before: also score the starting model (zero-shot with the class-name prompts).
        command: the command line, stored in the preset metadata.
        verbose: progress bars.

    Returns:
        dict: `before` (zero-shot metrics of the starting model, or None), `after` (metrics of the fine-tuned
        model), `class_names`, `train` (trainer result), `preset_dir`, `lr_multipliers` (min/max and per layer
        group), `seconds`, `train_seconds`, `skipped_examples`.
    """
    start = time.time()
    if head not in ("unicl", "linear"):
        raise ValueError(f"`head` must be 'unicl' or 'linear'. Received: head={head!r}")
    os.makedirs(output_dir, exist_ok=True)
    if train_data == BUILTIN:
        from florence_keras.data.builtin_dataset import ensure_builtin_dataset

        builtin = ensure_builtin_dataset(builtin_dir or os.path.join(output_dir, "data"), builtin_train,
                                         builtin_heldout, 64, seed)
        train_data, data_format = builtin["imagefolder"]["train"], "imagefolder"
        test_data = test_data or builtin["imagefolder"]["heldout"]
    if not test_data:
        raise ValueError("Give held-out test data (`test_data`), or use the built-in data.")
    class_names = training_class_names(train_data, data_format)
    templates = tuple(templates)
    labels_lib.validate_templates(templates)

    holder = {}

    def model_fn():
        clip = _load_clip(preset, image_size)
        holder["clip"] = clip
        if head == "linear":
            return LinearHeadClassifier(clip.backbone, len(class_names), name="linear_head_classifier")
        return clip.backbone

    probe = _load_clip(preset, image_size)
    train_size = image_size or int(max(probe.preprocessor.image_converter.image_size))
    preprocessor = probe.preprocessor
    skips = SkipCounter(name="training data")
    base_dataset = make_image_text_input_fn(train_data, data_format, preprocessor, augment=augment,
                                            templates=templates, skip_counter=skips)

    def make_dataset(request):
        dataset = base_dataset(request)
        if head == "linear":
            dataset = dataset.map(lambda b: dict(b, labels=class_index_labels(b["labels"], class_names)))
        return dataset

    trainer = FineTuneTrainer(
        model_fn, make_dataset, head=head, layer_decay=layer_decay, model_dir=output_dir, total_steps=steps,
        global_batch_size=global_batch_size, strategy=strategy, precision=precision,
        peak_learning_rate=learning_rate, warmup_steps=warmup_steps, weight_decay=weight_decay,
        beta_2=0.999, epsilon=1e-8,  # BEiT / Swin fine-tuning's AdamW constants [ours]
        stages=[TrainingStage("finetune", 0, train_size, prompt_augmented_texts=False)], image_size=train_size,
        checkpoint_every=checkpoint_every, deterministic=deterministic, seed=seed, verbose=verbose,
    )
    clip = holder["clip"]
    head_model = trainer.model if head == "linear" else None
    eval_kwargs = dict(templates=templates, batch_size=eval_batch_size, max_examples=max_eval_examples,
                       verbose=bool(verbose))
    before = None
    if evaluate_before:  # weights are the preset's until fit() restores a checkpoint
        before = evaluate_classifier(clip, test_data, data_format, class_names, **eval_kwargs)
    train_start = time.time()
    train_result = trainer.fit()
    train_seconds = time.time() - train_start
    if skips.count:
        logger.warning("%s", skips.summary())
    result = {"before": before, "after": None, "class_names": class_names, "train": train_result,
              "preset_dir": None, "train_seconds": train_seconds, "skipped_examples": skips.count,
              "lr_multipliers": _multiplier_summary(trainer), "train_data": train_data, "test_data": test_data,
              "data_format": data_format, "image_size": train_size}
    if not trainer.is_chief or train_result.get("preempted"):
        result["seconds"] = time.time() - start
        return result
    result["after"] = evaluate_classifier(clip, test_data, data_format, class_names, head_model=head_model,
                                          **eval_kwargs)
    preset_dir = os.path.join(output_dir, "preset")
    clip.save_to_preset(preset_dir)
    if head_model is not None:
        kernel, bias = (np.asarray(w) for w in head_model.head.get_weights())
        np.savez(os.path.join(preset_dir, "linear_head.npz"), kernel=kernel, bias=bias,
                 class_names=np.array(class_names))
    with open(os.path.join(preset_dir, "finetune_classification.json"), "w", encoding="utf-8") as f:
        json.dump({"command": command, "head": head, "class_names": class_names, "templates": list(templates),
                   "steps": steps, "global_batch_size": global_batch_size, "learning_rate": learning_rate,
                   "layer_decay": layer_decay, "weight_decay": weight_decay, "image_size": train_size,
                   "top1": float(result["after"]["top1"])}, f, indent=2)
    result["preset_dir"] = preset_dir
    result["seconds"] = time.time() - start
    return result


def _multiplier_summary(trainer):
    groups = {}
    for variable, multiplier in zip(trainer.model.trainable_variables, trainer.lr_multipliers):
        group = variable.path.split("/")[0]
        groups.setdefault(group, multiplier)
    values = list(trainer.lr_multipliers)
    return {"min": min(values), "max": max(values), "groups": groups}

"""UniCL pretraining end to end: data, training, held-out evaluation, a preset.

The library side of `recipes/pretrain_unicl.py` (which only parses flags): every
setting is a plain keyword argument.
"""

import dataclasses
import json
import logging
import os
import resource
import time

import tensorflow as tf

from florence_keras.data.attribute_captions import write_attribute_captions
from florence_keras.data.builtin_dataset import dense_label_classes
from florence_keras.data.builtin_dataset import dense_label_path
from florence_keras.data.builtin_dataset import ensure_builtin_dataset
from florence_keras.data.skip_counter import SkipCounter
from florence_keras.models import preset_registry
from florence_keras.models.florence_clip import FlorenceCLIP
from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
from florence_keras.models.florence_dense_pretrainer import FlorenceDensePretrainer
from florence_keras.training.image_text_input import make_image_text_input_fn
from florence_keras.training.source_mixture import make_source_mixture_input_fn
from florence_keras.training.distribution import make_strategy
from florence_keras.training.training_stage import TrainingStage
from florence_keras.training.training_stage import florence_stages
from florence_keras.training.optimizer_factory import AdamWConfig
from florence_keras.training.precision_choice import resolve_precision
from florence_keras.training.unicl_trainer import UniCLTrainer

logger = logging.getLogger(__name__)

BUILTIN = "builtin"
SKIP_REPORT = "data_skips.json"
LOSS_CURVE = "loss_curve.png"
# The built-in data's sources (`source_mixture`): its captions, and one caption set per attribute
# (`attribute_captions`); each step reads one source, by these weights.
BUILTIN_SOURCES = ("captions", "shape", "colour", "count", "place")
BUILTIN_SOURCE_WEIGHTS = {"captions": 2, "shape": 3, "colour": 1, "count": 2, "place": 1}
# The first half of the main job: shape-heavy, with colour and count kept alive, no captions (docs/training_science.md
# §3c: shape is the slow feature and the one the others suppress).
BUILTIN_FIRST_SOURCE_WEIGHTS = {"captions": 0, "shape": 6, "colour": 1, "count": 2, "place": 0}
# The logit-scale init of a model trained from scratch (an architecture preset), in place of CLIP's 1/0.07 ≈ 14.3:
# at small batches a text that names one attribute keeps pushing the other attributes out of the embedding
# until the loss saturates, and at 14.3 it never does (docs/training_science.md §3c). Neutral on the
# scikit-image caption set (zero-shot 58.7% vs 57.2%). `architecture_overrides={"logit_scale_init": ...}` sets
# another.
SCRATCH_LOGIT_SCALE_INIT = 50.0
# Token ids per training text for the built-in data, whose longest caption is far shorter (checked in
# tests/training/pretrain_unicl_sources_test.py); the text tower's cost falls ~2.4x from 77.
BUILTIN_TEXT_SEQUENCE_LENGTH = 32


def _cpu_seconds():
    """User + system CPU seconds of this process (all threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class RecordSkipCounter(SkipCounter):
    """A `SkipCounter` that also remembers which distinct records were skipped, and why.

    Reads repeat over epochs (a resume reads none of the records consumed before its checkpoint), so the read
    count grows with training; the distinct records are what to compare with the bad records in the data. At most
    `max_records` are remembered (`complete` says whether any were left out).
    """

    def __init__(self, max_records=1_000_000, **kwargs):
        self.max_records = max_records
        self._records = {}
        self._complete = True
        super().__init__(**kwargs)

    def reset(self):
        super().reset()
        with self._lock:
            self._records = {}
            self._complete = True

    def record(self, reason, source):
        super().record(reason, source)
        reason = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        source = source.decode("utf-8", "replace") if isinstance(source, bytes) else str(source)
        with self._lock:
            if source in self._records:
                return
            if len(self._records) < self.max_records:
                self._records[source] = reason
            else:
                self._complete = False

    def report(self):
        """A JSON-able dict: reads and distinct records skipped, each by reason."""
        with self._lock:
            records = dict(self._records)
            complete = self._complete
        by_reason = {}
        for reason in records.values():
            by_reason[reason] = by_reason.get(reason, 0) + 1
        return {
            "skipped_reads": self.count,
            "skipped_reads_by_reason": dict(sorted(self.reasons.items())),
            "skipped_records": len(records),
            "skipped_records_by_reason": dict(sorted(by_reason.items())),
            "complete": complete,
            "records": dict(sorted(records.items())),
        }


def write_skip_report(path, counter, extra=None):
    """Writes `counter.report()` (plus `extra`) as JSON, atomically."""
    report = dict(counter.report(), **(extra or {}))
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, path)
    return report


def _load_preprocessor(preset, image_size, text_sequence_length=None):
    preprocessor = preset_registry.load_preprocessor(preset, image_size)
    if text_sequence_length is None or text_sequence_length == preprocessor.sequence_length:
        return preprocessor
    if not 2 <= text_sequence_length <= preprocessor.sequence_length:
        raise ValueError(f"`text_sequence_length` must be in [2, {preprocessor.sequence_length}] (the text encoder's "
                         f"context). Received: {text_sequence_length!r}")
    # A shorter training context: the causal text encoder pools at the end-of-text token, so a text that fits
    # embeds exactly as at the full context (the saved preset keeps the full one).
    return FlorenceCLIPPreprocessor(preprocessor.tokenizer, preprocessor.image_converter,
                                    sequence_length=text_sequence_length)


def pretrain_unicl(
    model_dir,
    train_data=BUILTIN,
    data_format="csv",
    preset="florence_mini",
    image_size=64,
    steps=2200,
    global_batch_size=64,
    strategy="default",
    precision="float32",
    learning_rate=5e-4,
    warmup_steps=None,
    weight_decay=0.1,
    gradient_cache_chunk=None,
    activation_checkpointing=False,
    checkpoint_every=200,
    deterministic=False,
    seed=0,
    prompt_augmented_texts=True,
    augmented_texts_off_step=None,
    high_resolution_step=None,
    high_resolution_image_size=384,
    builtin_train=4000,
    builtin_heldout=600,
    builtin_test=1000,
    end_learning_rate=0.0,
    greyscale_probability=0.0,
    hard_negative_fraction=0.0,
    hard_negative_group=16,
    builtin_labels=False,
    labels_first_fraction=0.0,
    labels_after_first_stage=False,
    builtin_sources=BUILTIN_SOURCES,
    source_weights=None,
    architecture_overrides=None,
    text_sequence_length=None,
    first_source_weights=None,
    first_sources_fraction=0.5,
    builtin_palette="default",
    builtin_shapes=None,
    dense_aux_weight=0.0,
    evaluate=None,
    command=None,
    verbose=1,
):
    """Pretrains a FlorenceCLIP with UniCL, evaluates it, and writes `model_dir/preset`.

    Args:
        model_dir: run directory (checkpoints, TensorBoard logs, the built-in data, the preset).
        train_data: "builtin", or data path(s) in `data_format`.
        data_format: csv | tsv | csvlabel | coco | imagefolder | wds | tfrecord.
        preset: architecture preset name, preset directory or handle to start from.
        image_size: training resolution (stage 1 and 2).
        steps: optimizer steps.
        global_batch_size: the contrastive batch across all replicas.
        strategy: "default", "mirrored" or "multi_worker".
        precision: "float32", "mixed_bfloat16", "mixed_float16", or "auto" (`precision_choice`: mixed_bfloat16 on
            a GPU/TPU or a CPU with native bfloat16, float32 elsewhere; stored resolved in the preset metadata).
        learning_rate, warmup_steps, weight_decay, end_learning_rate: AdamW with warm-up + cosine decay from
            `learning_rate` to `end_learning_rate`. The defaults are the main job's (`recipes/pretrain_unicl.py`):
            lr 5e-4 and `warmup_steps=None`, i.e. 10% of `steps` (1e-3 with a short warm-up breaks florence_mini's
            encoder, docs/training_science.md).
        gradient_cache_chunk: per-replica chunk for gradient cache (None: off).
        activation_checkpointing: rematerialise the transformer blocks.
        checkpoint_every: steps between checkpoints.
        deterministic: reproducible run (resumes bit-exactly).
        seed: weights and data seed.
        prompt_augmented_texts: stage 1 wraps short texts in prompt templates.
        augmented_texts_off_step: Florence's stage 2 starts here (None: never).
        high_resolution_step: Florence's stage 3 starts here (None: never).
        high_resolution_image_size: stage 3 resolution.
        builtin_train, builtin_heldout, builtin_test: sizes of the built-in dataset's splits (training, unseen
            combinations, in-distribution test).
        builtin_palette, builtin_shapes: the built-in scenes' colours (a name of `scene.PALETTES`: "default" or
            "alt", eight other colours) and shapes (a subset of `scene.SHAPES`; None: all eight); the held-out
            pairs, attribute captions and evaluation follow them (`SceneGenerator`'s `palette` and `shapes`).
        greyscale_probability: fraction of training images turned greyscale, their captions losing colour words
            (see `make_image_text_input_fn`).
        builtin_labels: with the built-in data in an index format (csv, coco), also train on its image-label
            form (the ImageFolder tree, one class per scene: its nearest object's shape, with prompt templates)
            beside the captions, as UniCL joins ImageNet labels and web captions (SPEC §1).
        labels_first_fraction: float in [0, 1); with `builtin_labels`, this first share of the steps trains on
            the labels alone (a stage named "labels"), then labels and captions together.
        labels_after_first_stage: bool; False: after the label stage, the captions alone.
        builtin_sources: with the built-in data in an index format: the sources a step reads from, each step one
            (`source_mixture`): "captions" (the scenes' captions) and attributes of `attribute_captions`
            ("shape", "colour", "count", "place": "a circle", "a red object", "two objects", "an object on the
            left"). Empty or ("captions",): the captions alone, as any other data.
        source_weights: one int per `builtin_sources`, its share of the steps (None: `BUILTIN_SOURCE_WEIGHTS` by
            name).
        first_source_weights, first_sources_fraction: with `builtin_sources`, a first stage of this share of the
            steps reads the sources by these weights (one per source; None: `BUILTIN_FIRST_SOURCE_WEIGHTS` by
            name), then by `source_weights`. No first stage when its weights are all 0 or the fraction is 0.
        text_sequence_length: token ids per training text (None: the preset's context, 77; for the built-in data
            `BUILTIN_TEXT_SEQUENCE_LENGTH`). Longer texts are cut. The preset keeps its full context: a causal text
            encoder embeds a text that fits the same at any context length.
        architecture_overrides: dict merged into an architecture preset's config (e.g. `{"logit_scale_init": 14.29}`,
            `{"image_encoder": {"depths": [2, 2, 2, 1]}}`); only with an architecture preset, whose logit-scale
            init is `SCRATCH_LOGIT_SCALE_INIT` unless given here.
        hard_negative_fraction, hard_negative_group: the share of each epoch ordered in groups of
            `hard_negative_group` examples whose captions share a word: in-batch hard negatives (see
            `make_image_text_input_fn`; index formats such as csv and coco).
        dense_aux_weight: float >= 0; with the built-in data, > 0 adds this weight × a dense-label loss
            (`FlorenceDensePretrainer`: a linear head on the image map predicts per sub-block which shape and colour
            is there and whether it is partly hidden, from the data's per-pixel label maps, cropped and flipped with
            the images). The head is for pretraining only: the preset is the `FlorenceCLIP` without it. 0: UniCL
            alone.
        evaluate: None, or a callable `(task, builtin_paths, preset_dir, verbose) -> scores dict` run on the
            built-in data after training (the recipe passes
            `florence_keras.evaluation.heldout_evaluation.evaluate_builtin`; training does not import evaluation).
        command: the command line, stored in the preset metadata.
        verbose: progress bar.

    Returns:
        dict: `preset_dir`, `train` (trainer result), `scores` (`evaluate_builtin`'s, or None), `seconds`,
        `cpu_seconds` (process user + system time), `loss_curve` (PNG path or None), `skipped_examples`
        (skipped reads), `skipped_records_by_reason` and `skip_report` (`model_dir/data_skips.json`: reads and
        distinct records skipped, by reason, and the records with their reasons; written by the chief, also when
        training fails).
    """
    start, start_cpu = time.time(), _cpu_seconds()
    # MultiWorkerMirroredStrategy must exist before any other TensorFlow op runs.
    strategy = make_strategy(strategy) if isinstance(strategy, str) else strategy
    precision = resolve_precision(precision)
    os.makedirs(model_dir, exist_ok=True)
    builtin_paths = None
    label_data = None
    source_data = None
    if not 0.0 <= labels_first_fraction < 1.0:
        raise ValueError(f"`labels_first_fraction` must be in [0, 1). Received: {labels_first_fraction!r}")
    if train_data == BUILTIN and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        raise ValueError(
            "The built-in data is written by a single process; for multi-worker runs write it once with "
            "florence_keras.data.write_builtin_dataset (or recipes/prepare_data.py) and pass --train_data."
        )
    if not dense_aux_weight >= 0.0:
        raise ValueError(f"`dense_aux_weight` must be >= 0. Received: {dense_aux_weight!r}")
    if dense_aux_weight > 0 and train_data != BUILTIN:
        raise ValueError("`dense_aux_weight` needs per-pixel label maps, which the built-in data has "
                         "(train_data='builtin'); other data has none.")
    if dense_aux_weight > 0 and greyscale_probability > 0:
        raise ValueError("`dense_aux_weight` with `greyscale_probability`: a greyscale image would keep its colour "
                         "labels. Use one or the other.")
    if dense_aux_weight > 0 and gradient_cache_chunk is not None:
        raise ValueError("`dense_aux_weight` adds a per-example loss the gradient cache does not split: leave "
                         "`gradient_cache_chunk` unset.")
    if train_data == BUILTIN:
        builtin_paths = ensure_builtin_dataset(os.path.join(model_dir, "data"), builtin_train, builtin_heldout,
                                               image_size, seed, num_test=builtin_test, palette=builtin_palette,
                                               shapes=builtin_shapes)
        if data_format not in builtin_paths:
            raise ValueError(f"The built-in data is written as csv, coco, imagefolder or tfrecord. "
                             f"Received: data_format={data_format!r}")
        train_data = builtin_paths[data_format]["train"]
        if builtin_labels and data_format not in ("csv", "coco"):
            logger.warning("builtin_labels joins the captions (csv or coco) with the ImageFolder labels; with "
                           "data_format=%s the built-in data is trained as that format alone.", data_format)
        elif builtin_labels:
            label_data = "imagefolder:" + builtin_paths["imagefolder"]["train"]
        builtin_sources = tuple(builtin_sources or ())
        if data_format in ("csv", "coco") and builtin_sources not in ((), ("captions",)):
            unknown = sorted(set(builtin_sources) - set(BUILTIN_SOURCE_WEIGHTS))
            if unknown:
                raise ValueError(f"Unknown built-in sources {unknown}: {', '.join(BUILTIN_SOURCE_WEIGHTS)}.")
            if source_weights is None:
                source_weights = [BUILTIN_SOURCE_WEIGHTS[name] for name in builtin_sources]
            if first_source_weights is None:
                first_source_weights = [BUILTIN_FIRST_SOURCE_WEIGHTS[name] for name in builtin_sources]
            for name, weights in (("source_weights", source_weights), ("first_source_weights", first_source_weights)):
                if len(weights) != len(builtin_sources):
                    raise ValueError(f"One weight per source: builtin_sources={builtin_sources!r}, "
                                     f"{name}={tuple(weights)!r}")
            attributes = [name for name in builtin_sources if name != "captions"]
            attribute_files = write_attribute_captions(builtin_paths["attributes"]["train"], attributes)
            source_data = {name: ([train_data] if name == "captions" else ["csv:" + attribute_files[name]])
                           for name in builtin_sources}
            source_weights = list(source_weights)
            if label_data is not None and (labels_after_first_stage or labels_first_fraction == 0):
                # The labels beside the captions: in the captions' batches, or in batches of their own.
                if "captions" in source_data:
                    source_data["captions"] = source_data["captions"] + [label_data]
                else:
                    source_data["labels"] = [label_data]
                    source_weights.append(1)
        caption_data = train_data
        if label_data is not None:
            train_data = [train_data, label_data]
    dtype = None
    holder = {}

    # An architecture preset is built at the training resolution; a trained one keeps its own.
    is_architecture = preset_registry.resolve(preset).kind == "architecture"
    if architecture_overrides and not is_architecture:
        raise ValueError(f"`architecture_overrides` change an architecture preset; {preset!r} is a trained preset.")
    architecture_overrides = ({"logit_scale_init": SCRATCH_LOGIT_SCALE_INIT, **(architecture_overrides or {})}
                              if is_architecture else None)
    architecture_args = ({"image_size": image_size, "dtype": dtype, **architecture_overrides}
                         if is_architecture else {})

    dense = dense_aux_weight > 0

    def model_fn():
        holder["task"] = FlorenceCLIP.from_preset(preset, **architecture_args)
        if not dense:
            return holder["task"]
        # The pretrainer shares the CLIP's backbone; the CLIP (without the dense head) is what gets saved.
        return FlorenceDensePretrainer(holder["task"].backbone, holder["task"].preprocessor,
                                       dense_class_counts=dense_label_classes(builtin_paths),
                                       dense_weight=dense_aux_weight)

    if warmup_steps is None:  # 10% of the run (the recipe's --warmup_fraction default)
        warmup_steps = max(1, int(round(0.1 * steps)))
    if text_sequence_length is None and builtin_paths is not None:
        text_sequence_length = BUILTIN_TEXT_SEQUENCE_LENGTH
    preprocessor = _load_preprocessor(preset, image_size, text_sequence_length)
    skips = RecordSkipCounter(name="training data")

    def input_fn(data):
        return make_image_text_input_fn(data, data_format, preprocessor, skip_counter=skips,
                                        greyscale_probability=greyscale_probability,
                                        hard_negative_fraction=hard_negative_fraction,
                                        hard_negative_group=hard_negative_group,
                                        dense_labels=dense_label_path if dense else None,
                                        dense_label_classes=dense_label_classes(builtin_paths) if dense else None)

    labels_beside = label_data is not None and (labels_after_first_stage or labels_first_fraction == 0)
    make_dataset = input_fn(train_data if labels_beside else caption_data) if builtin_paths else input_fn(train_data)
    if source_data:  # each step reads one source
        make_dataset = make_source_mixture_input_fn([input_fn(data) for data in source_data.values()],
                                                    source_weights)
    stages = florence_stages(
        steps, image_size=image_size, prompt_augmented_texts=prompt_augmented_texts,
        augmented_texts_off_step=augmented_texts_off_step, high_resolution_step=high_resolution_step,
        high_resolution_image_size=high_resolution_image_size,
    )
    # Stages before the schedule's own: the labels alone, then the sources by their first weights.
    prefix = []
    label_steps = int(round(labels_first_fraction * steps)) if label_data is not None else 0
    if label_steps > 0:
        prefix.append(("labels", label_steps, make_image_text_input_fn(
            [label_data], data_format, preprocessor, skip_counter=skips,
            greyscale_probability=greyscale_probability,
            dense_labels=dense_label_path if dense else None,
            dense_label_classes=dense_label_classes(builtin_paths) if dense else None)))
    first_steps = (int(round(first_sources_fraction * steps)) if source_data and any(first_source_weights or ())
                   else 0)
    if first_steps > 0:
        weights = list(first_source_weights) + [0] * (len(source_data) - len(first_source_weights))  # + "labels"
        prefix.append(("sources_first", first_steps, make_source_mixture_input_fn(
            [input_fn(data) for data in source_data.values()], weights)))
    if prefix:
        # Each prefix stage at the resolution of the schedule's stage it replaces; the schedule's own stages follow
        # (one that would begin inside the prefix begins when it ends).
        make_later_dataset = make_dataset
        by_name = {name: make for name, _, make in prefix}
        new_stages, first_step = [], 0
        for name, count, _ in prefix:
            if first_step >= steps - 1:  # prefixes longer than the run are shortened (the last step is the schedule's)
                break
            current = [stage for stage in stages if stage.start_step <= first_step][-1]
            new_stages.append(TrainingStage(name, first_step, current.image_size, current.prompt_augmented_texts))
            first_step += count
        first_step = min(first_step, steps - 1)
        current = [stage for stage in stages if stage.start_step <= first_step][-1]
        stages = new_stages + [dataclasses.replace(current, start_step=first_step)] + [
            stage for stage in stages if stage.start_step > first_step]

        def make_dataset(request):
            return by_name.get(request.stage.name, make_later_dataset)(request)
    trainer = UniCLTrainer(
        model_fn, make_dataset, model_dir=model_dir, total_steps=steps, global_batch_size=global_batch_size,
        strategy=strategy, precision=precision,
        optimizer=AdamWConfig().replace(learning_rate=learning_rate, warmup_steps=warmup_steps,
                                        weight_decay=weight_decay, end_learning_rate=end_learning_rate),
        chunk_size=gradient_cache_chunk,
        activation_checkpointing=activation_checkpointing, stages=stages, image_size=image_size,
        checkpoint_every=checkpoint_every, deterministic=deterministic, seed=seed, verbose=verbose,
    )
    skip_report_path = os.path.join(model_dir, SKIP_REPORT)
    try:
        train_result = trainer.fit()
    finally:  # also when training fails: what was skipped so far
        if trainer.is_chief:
            write_skip_report(skip_report_path, skips, {"train_data": train_data, "data_format": data_format})
    train_seconds, train_cpu_seconds = time.time() - start, _cpu_seconds() - start_cpu
    if skips.count:
        logger.warning("%s", skips.summary())
    report = skips.report()
    result = {"train": train_result, "preset_dir": None, "scores": None, "seconds": None, "cpu_seconds": None,
              "loss_curve": None,
              "skipped_examples": skips.count, "skipped_records_by_reason": report["skipped_records_by_reason"],
              "skip_report": skip_report_path if trainer.is_chief else None}
    if not trainer.is_chief or train_result.get("preempted"):
        result["seconds"], result["cpu_seconds"] = time.time() - start, _cpu_seconds() - start_cpu
        return result
    from florence_keras.training.loss_curve import plot_loss_curve

    result["loss_curve"] = plot_loss_curve(os.path.join(model_dir, "tensorboard"), os.path.join(model_dir, LOSS_CURVE),
                                           batch_size=global_batch_size)
    task = holder["task"]
    preset_dir = os.path.join(model_dir, "preset")
    task.save_to_preset(preset_dir)
    result["preset_dir"] = preset_dir
    if evaluate is not None and builtin_paths is not None:
        # The scores stored with the preset are the preset's as a user loads it: a loaded preset follows the
        # caller's Keras policy (float32 by default), so a model trained in mixed precision is scored re-loaded.
        scored = task if precision == "float32" else FlorenceCLIP.from_preset(preset_dir)
        result["scores"] = evaluate(scored, builtin_paths, preset_dir, verbose=bool(verbose))
    result["seconds"], result["cpu_seconds"] = time.time() - start, _cpu_seconds() - start_cpu
    _write_metadata(preset_dir, {
        "florence_training": {
            "command": command, "preset": preset, "train_data": train_data, "data_format": data_format,
            "image_size": image_size, "steps": steps, "global_batch_size": global_batch_size,
            "learning_rate": learning_rate, "warmup_steps": warmup_steps, "weight_decay": weight_decay,
            "end_learning_rate": end_learning_rate, "greyscale_probability": greyscale_probability,
            "hard_negative_fraction": hard_negative_fraction, "hard_negative_group": hard_negative_group,
            "builtin_labels": builtin_labels, "labels_first_fraction": labels_first_fraction,
            "dense_aux_weight": dense_aux_weight,
            "labels_after_first_stage": labels_after_first_stage,
            "architecture_overrides": architecture_overrides or None,
            "text_sequence_length": preprocessor.sequence_length,
            "first_source_weights": list(first_source_weights) if first_steps else None,
            "first_sources_fraction": first_sources_fraction if first_steps else 0.0,
            "builtin_sources": list(source_data or ()), "source_weights": list(source_weights) if source_data else None,
            "precision": precision, "strategy": type(strategy).__name__, "seed": seed,
            "builtin_train": builtin_train if builtin_paths else None,
            "builtin_heldout": builtin_heldout if builtin_paths else None,
            "builtin_test": builtin_test if builtin_paths else None,
            "builtin_palette": builtin_palette if builtin_paths else None,
            "builtin_shapes": list(builtin_paths["class_names"]) if builtin_paths else None,
            "final_loss": train_result.get("loss"), "train_seconds": round(train_seconds, 1),
            "train_cpu_seconds": round(train_cpu_seconds, 1), "seconds": round(result["seconds"], 1),
            "cpu_seconds": round(result["cpu_seconds"], 1), "cpu_count": os.cpu_count(),
            "skipped_examples": skips.count,
        },
        "florence_scores": result["scores"],
    })
    return result



def _write_metadata(preset_dir, extra):
    """Merges `extra` into the preset's metadata.json and re-writes its manifest (after verifying it)."""
    from florence_keras.models import preset_directory

    preset_directory.update_metadata(preset_dir, extra)

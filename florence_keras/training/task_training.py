"""The adapters' shared training block: train a Task with `UniCLTrainer`, save it as a preset, write a report."""

import json
import os
import time

import numpy as np

from florence_keras.models.preset_manifest import MANIFEST_FILE
from florence_keras.training.layerwise_lr_decay import make_layerwise_decay_optimizer
from florence_keras.training.optimizer_factory import AdamWConfig
from florence_keras.training.unicl_trainer import UniCLTrainer

# The `train_task` arguments that every adapter recipe has a flag of the same name for: a recipe passes
# `**{name: FLAGS[name].value for name in TRAINING_FLAGS}`.
TRAINING_FLAGS = ("model_dir", "steps", "batch_size", "image_size", "learning_rate", "warmup_steps", "weight_decay",
                  "checkpoint_every", "seed")


def train_task(
    model_fn,
    make_dataset,
    *,
    model_dir,
    task,
    command,
    steps,
    batch_size,
    image_size,
    learning_rate,
    warmup_steps,
    weight_decay,
    checkpoint_every=500,
    seed=0,
    settings=None,
    metadata=None,
    report=None,
    after_training=None,
    note=None,
    start_time=None,
    verbose=1,
    lr_multipliers=None,
):
    """Trains a Task (an adapter) to `steps`, saves `model_dir/preset` and writes `model_dir/train_<task>.json`.

    The block every adapter recipe (`recipes/train_{detection,vqa,captioning,video,depth}.py`) runs once it has
    read its data:

    1. `UniCLTrainer` on the Task's own loss with AdamW (β2 0.999, ε 1e-8, linear warm-up of
       `min(warmup_steps, steps - 1)` steps, then cosine to 0). Checkpoints go to `model_dir/checkpoints` and a
       rerun resumes from the newest one.
    2. A preempted run (SIGTERM: the trainer checkpoints and stops) prints
       "Stopped at step N (preempted); rerun to resume." and saves nothing else.
    3. A rerun of a finished `model_dir` (the checkpoint is at `steps`, the preset and the report are written)
       trains nothing and leaves both as they are; the report is read back.
    4. Otherwise `after_training(task)` runs (e.g. scoring held-back pairs), the Task is saved as the preset
       `model_dir/preset` whose `metadata.json` gets a "florence_training" record — `settings`, `task`, `command`,
       `metadata`, `final_loss`, `train_seconds` and what `after_training` returned — and the report
       `model_dir/train_<task>.json` is written: `train` (the trainer's result), `settings`, `command`,
       `preset_dir`, `report`, what `after_training` returned, `seconds`, `process_cpu_seconds`.
    5. A line "Trained N steps in W s wall, C s process CPU (final loss L); [note; ]wrote the preset DIR".

    Args:
        model_fn: zero-argument callable returning the built Task (called by the trainer inside its strategy
            scope, after seeding with `seed`).
        make_dataset: callable `(DatasetRequest, task) -> tf.data.Dataset` of per-replica batches following the
            Task's batch contract; `task` is the built Task (for its preprocessor's normaliser or tokenizer).
        model_dir: the run directory.
        task: str, the Task's short name ("depth", "detection", ...): `metadata.json`'s "task" and the report's
            file name `train_<task>.json`.
        command: str, the command line that ran the training (recorded in the metadata and the report).
        steps: int > 0, optimizer steps.
        batch_size: int, the global batch size.
        image_size: int, the training resolution.
        learning_rate: float, the peak AdamW learning rate.
        warmup_steps: int, linear warm-up steps (at most `steps - 1` are used).
        weight_decay: float, AdamW weight decay (not on norms and biases).
        checkpoint_every: int > 0, steps between checkpoints. Defaults to 500.
        seed: int, the trainer's seed (model init and `DatasetRequest.seed`). Defaults to 0.
        settings: dict of JSON values, the run's settings (the recipe's flags). Defaults to {}.
        metadata: dict of JSON values added to the preset's training record only (e.g. the training files).
        report: optional zero-argument callable returning a dict of JSON values added to the report only
            (e.g. example counts, skipped examples); called after training, so counters that the input pipeline
            updates while training (clips that fail to decode) are final.
        after_training: optional callable `task -> dict` run after training and before saving; its dict goes
            into both the training record and the report (e.g. `{"validation": scores}`).
        note: optional zero-argument callable returning a str printed in the final line before "wrote the
            preset" (called after training, like `report`).
        start_time: `time.time()` at the start of the run, so `train_seconds` counts data loading too.
            Defaults to now.
        verbose: 0 or 1, the trainer's progress bar. Defaults to 1.
        lr_multipliers: optional callable `(task, trainable_variables) -> list of float > 0`, one learning-rate
            multiplier per variable (METER's per-module rates: the pretrained encoders slower than the new fusion
            and head). The optimizer is then `LayerwiseDecayAdamW` (`make_layerwise_decay_optimizer`): each
            variable's step and decoupled weight decay use `multiplier × the schedule's rate`. Defaults to None
            (one rate for every variable).

    Returns:
        A dict: `status` ("trained", "preempted" or "already_trained"), `train` (the trainer's result: `step`,
        `loss`, `preempted`, `checkpoint`), `preset_dir` (None when preempted), `report` (the report written or,
        when already trained, read back; None when preempted), `seconds` (wall time since `start_time`) and
        `process_cpu_seconds`.

    Example:

    >>> outcome = train_task(                                          # doctest: +SKIP
    ...     lambda: FlorenceDepthEstimator.from_preset("florence_mini_builtin", image_size=64),
    ...     lambda request, task: depth_dataset(images, depth, request.batch_size,
    ...                                         task.preprocessor.image_converter.normalizer()),
    ...     model_dir="/tmp/depth", task="depth", command="python recipes/train_depth.py --model_dir=/tmp/depth",
    ...     steps=1200, batch_size=32, image_size=64, learning_rate=1e-3, warmup_steps=100, weight_decay=0.05)
    >>> FlorenceDepthEstimator.from_preset(outcome["preset_dir"])      # doctest: +SKIP
    """
    start_time = time.time() if start_time is None else start_time
    if not isinstance(task, str) or not task:
        raise ValueError(f"`task` must be a non-empty str. Received: task={task!r}")
    if not callable(make_dataset):
        raise ValueError(f"`make_dataset` must be a callable. Received: make_dataset={make_dataset!r}")
    for name, value in (("after_training", after_training), ("report", report), ("note", note)):
        if value is not None and not callable(value):
            raise ValueError(f"`{name}` must be None or a callable. Received: {name}={value!r}")
    if not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"`steps` must be a positive int. Received: steps={steps!r}")
    settings = dict(settings or {})
    model_dir = os.fspath(model_dir)
    preset_dir = os.path.join(model_dir, "preset")
    report_path = os.path.join(model_dir, f"train_{task}.json")

    trainer = None

    def dataset_for(request):
        return make_dataset(request, trainer.model)

    optimizer = AdamWConfig(learning_rate=learning_rate, weight_decay=weight_decay, beta_2=0.999, epsilon=1e-8,
                            warmup_steps=min(warmup_steps, steps - 1))
    if lr_multipliers is not None and not callable(lr_multipliers):
        raise ValueError(f"`lr_multipliers` must be None or a callable. Received: lr_multipliers={lr_multipliers!r}")

    built = {}

    def build_task():
        built["task"] = model_fn()
        return built["task"]

    def optimizer_fn(variables, config, *, total_steps, precision):
        # Called by the trainer's constructor inside the strategy scope, once the Task exists.
        multipliers = [float(m) for m in lr_multipliers(built["task"], list(variables))]
        return make_layerwise_decay_optimizer(variables, multipliers, config, total_steps=total_steps,
                                              precision=precision)

    trainer = UniCLTrainer(build_task, dataset_for, model_dir=model_dir, total_steps=steps,
                           global_batch_size=batch_size, optimizer=optimizer, image_size=image_size,
                           checkpoint_every=checkpoint_every, seed=seed, verbose=verbose,
                           optimizer_fn=None if lr_multipliers is None else optimizer_fn)
    result = trainer.fit()
    seconds = time.time() - start_time
    outcome = {"status": "trained", "train": result, "preset_dir": preset_dir, "report": None, "seconds": seconds,
               "process_cpu_seconds": time.process_time()}
    if result["preempted"]:
        print(f"Stopped at step {result['step']} (preempted); rerun to resume.")
        return dict(outcome, status="preempted", preset_dir=None)
    finished_before = result["loss"] is None  # no step ran: the checkpoint was already at `steps`
    if finished_before and os.path.isfile(os.path.join(preset_dir, MANIFEST_FILE)) and os.path.isfile(report_path):
        print(f"Already trained: {model_dir} is at step {result['step']} of {steps}; the preset {preset_dir} "
              f"and {report_path} are left as they are.")
        with open(report_path, encoding="utf-8") as file:
            return dict(outcome, status="already_trained", report=json.load(file))

    extra = dict(after_training(trainer.model)) if after_training is not None else {}
    trainer.model.save_to_preset(preset_dir, metadata={"florence_training": dict(
        settings, task=task, command=command, **(metadata or {}), final_loss=result["loss"], train_seconds=seconds,
        **extra)})
    cpu_seconds = time.process_time()
    written = {"train": result, "settings": settings, "command": command, "preset_dir": preset_dir,
               **(report() if report is not None else {}), **extra, "seconds": seconds, "process_cpu_seconds": cpu_seconds}
    _write_json(written, report_path)
    final_loss = "none: no step ran" if result["loss"] is None else f"{result['loss']:.4f}"
    note = note() if note is not None else None
    print(f"Trained {result['step']} steps in {seconds:.0f} s wall, {cpu_seconds:.0f} s process CPU "
          f"(final loss {final_loss}); {note + '; ' if note else ''}wrote the preset {preset_dir}")
    return dict(outcome, report=written, process_cpu_seconds=cpu_seconds)


def _plain(value):
    """numpy scalars and arrays as plain JSON values (training does not import evaluation's reporting)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Cannot write a value of type {type(value).__name__} as JSON. Received: {value!r}")


def _write_json(document, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=1, default=_plain)
        file.write("\n")
    os.replace(tmp, path)

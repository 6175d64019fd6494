"""`UniCLTrainer`: UniCL pretraining with one custom training loop for every scale."""

import logging
import math
import os
import signal
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from florence_keras.layers.example_window import example_window
from florence_keras.models.florence_task import FlorenceTask
from florence_keras.models.training_batch import check_batch_spec
from florence_keras.training.activation_checkpointing import enable_activation_checkpointing
from florence_keras.training.dataset_request import DatasetRequest
from florence_keras.training.distribution import is_chief
from florence_keras.training.distribution import make_strategy
from florence_keras.training.gradient_cache import GradientCache
from florence_keras.training.gradient_cache import check_task
from florence_keras.training.gradient_cache import full_batch_gradients
from florence_keras.training.non_finite_loss_error import NonFiniteLossError
from florence_keras.training.optimizer_factory import AdamWConfig
from florence_keras.training.optimizer_factory import make_optimizer
from florence_keras.training.training_checkpoint import CheckpointSaveError
from florence_keras.training.training_checkpoint import TrainingCheckpoint
from florence_keras.training.training_stage import TrainingStage

logger = logging.getLogger(__name__)

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")

# A positioned dataset's batches carry each example's stream position under this key (see DatasetRequest).
POSITIONS = "positions"
# What the trainer's input function puts in its place: [num_input_pipelines] int64, this pipeline's slot holding one
# past the batch's largest position, the other slots 0.
_CONSUMED = "_consumed_positions"
_IMAGE_TEXT_BATCH = FlorenceTask.training_batch_spec  # for a Task without `check_training_batch`


def _consumed_positions(own):
    """Replica context: the consumed position of every input pipeline, the max over all replicas' reports."""
    context = tf.distribute.get_replica_context()
    return tf.reduce_max(context.all_gather(own[None], axis=0), axis=0)


class _StopRequest:
    """Records SIGTERM (preemption) while training; restores the previous handler afterwards."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        logger.warning("SIGTERM received: saving a checkpoint after the current step, then stopping.")
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _check_element_spec(spec, stage, task):
    """The Task checks its batches (`check_training_batch`); a Task without the hook gets UniCL's batch check."""
    check = getattr(task, "check_training_batch", None)
    if check is not None:
        check(spec, stage.image_size)
    else:
        check_batch_spec(spec, _IMAGE_TEXT_BATCH, stage.image_size, type(task).__name__)


class UniCLTrainer:
    """Trains a Task on its own loss (UniCL pretraining, SPEC §1) with one custom loop for all scales.

    The same code path runs on one device (`strategy="default"`), the GPUs of one host (`"mirrored"`)
    and many hosts (`"multi_worker"`, configured by TF_CONFIG; Keras 3 `fit` is broken there, ENV.md).
    Each step, per replica: the Task computes its loss on the local batch, `task.replica_loss(x, labels,
    replica_context=...)`, with this replica's context passed explicitly (FlorenceCLIP's UniCL loss gathers
    the global batch across it); with `chunk_size` the `GradientCache` uses the Task's split of that loss
    (`task.embed` chunk by chunk, `task.loss_from_embeddings` once). The gradients are summed across
    replicas and AdamW (`make_optimizer`, configured by an `AdamWConfig`) applies them. For one device and
    `MirroredStrategy` the Task's Keras `fit` trains the same loss; this loop adds multi-worker training,
    the gradient cache, exact resume and the preemption / checkpoint handling below.

    * Mixed precision: "float32", "mixed_bfloat16", "mixed_float16" (dynamic loss scaling with Keras's
      `LossScaleOptimizer`). The loss is always float32. The policy is active while `model_fn` runs.
      With "mixed_float16" (several replicas) or `clip_norm`, the trainer all-reduces the gradients itself
      so that the finiteness check and the clip see the global gradient on every replica (and all replicas
      take the same branch), then hands g / N to the optimizer, whose own all-reduce sums it back to g.
    * Activation checkpointing: `activation_checkpointing=True` rematerialises the model's blocks
      (`enable_activation_checkpointing`), or pass layer names / a predicate.
    * Checkpoints every `checkpoint_every` steps, at the end and on SIGTERM (all workers stop at the same
      step: the stop flag is all-reduced each step). Rerunning with the same `model_dir` resumes from the
      newest checkpoint. The data position is checkpointed too: with a positioned dataset (batches carry
      `positions`, as `make_image_text_input_fn`'s do) each input pipeline restarts right after the last
      example consumed, reading nothing before it; otherwise the trainer rebuilds the stage's dataset and
      skips the batches already consumed (see `DatasetRequest`). With `deterministic=True` (seeded init, TF
      op determinism, a deterministic dataset) a run killed at any point and resumed ends with the same
      weights as an uninterrupted run.
    * Crash safety: a checkpoint that can't be restored (cut by SIGKILL or a full disk, truncated, corrupt) is
      skipped with a WARNING and the previous one restored (`TrainingCheckpoint.restore_latest`). A periodic
      save that fails (ENOSPC, an I/O error) is logged as an ERROR and training goes on — the next save retries —
      unless `max_failed_saves` saves in a row failed; a failed final or SIGTERM save raises
      `CheckpointSaveError`. Either way the previous checkpoint stays usable (docs/reliability_training.md).
    * A NaN/Inf loss raises `NonFiniteLossError` naming the step; that state is not saved, so the last
      checkpoint is the last good one.
    * TensorBoard scalars (loss, learning_rate, samples_per_second, and the Task's `training_scalars()` such as
      logit_scale) in `model_dir/tensorboard`
      and a Keras progress bar, on the chief only.
    * Florence's stages: `stages` (see `florence_stages`) switch the data at given steps — prompt-augmented
      texts on/off, resolution — by calling `make_dataset` again with the new `TrainingStage`.

    Args:
        model_fn: zero-argument callable returning a built Task that owns its loss: `replica_loss(x,
            labels, replica_context, training)` (and `embed` / `loss_from_embeddings` for the gradient
            cache), e.g. `FlorenceCLIP` or `FlorenceImageClassifier`. Called inside the strategy scope.
        make_dataset: callable `DatasetRequest -> tf.data.Dataset` of per-replica batches (see
            `DatasetRequest` for the contract).
        model_dir: directory for checkpoints (`model_dir/checkpoints`) and TensorBoard logs.
        total_steps: int > 0, number of optimizer steps.
        global_batch_size: int, the contrastive batch over all replicas (divisible by the replica count).
        strategy: "default", "mirrored", "multi_worker" or a `tf.distribute.Strategy`.
        precision: "float32", "mixed_bfloat16" or "mixed_float16".
        optimizer: an `AdamWConfig` (learning rate, warm-up, end learning rate, weight decay, betas,
            epsilon, extra no-decay names). Defaults to `AdamWConfig()`, pretraining's values.
        clip_norm: float or None; clip the global gradient norm (after the cross-replica sum).
        chunk_size: int or None; per-replica gradient-cache chunk (None: one pass over the batch).
        activation_checkpointing: False, True, a list of layer names, or a predicate on layers.
        optimizer_fn: optional callable `(trainable_variables, config, *, total_steps, precision)` returning
            a built optimizer, with `make_optimizer`'s signature; called inside the strategy scope.
            Defaults to `make_optimizer` (fine-tuning passes one with layer-wise learning-rate decay).
        stages: list of `TrainingStage` sorted by `start_step`, the first at 0. Defaults to one stage at
            `image_size` without prompt-augmented texts.
        image_size: int, resolution of the default stage. Defaults to 224.
        checkpoint_every: int > 0, steps between checkpoints. Defaults to 1000.
        max_checkpoints: int, checkpoints kept. Defaults to 3.
        max_failed_saves: int > 0; this many periodic checkpoint saves failing in a row stop the run with
            `CheckpointSaveError`. Defaults to 3.
        log_every: int > 0, steps between TensorBoard writes. Defaults to 10.
        deterministic: bool; enable TensorFlow op determinism (process-wide, cannot be undone) and
            ask make_dataset for a deterministic stream (`DatasetRequest.deterministic`).
        seed: int; `keras.utils.set_random_seed(seed)` is called before `model_fn` (Python, NumPy and
            TensorFlow global seeds) and the data gets it as `DatasetRequest.seed`.
        verbose: 0 (silent) or 1 (progress bar on the chief).

    Example:

    >>> trainer = UniCLTrainer(                                   # doctest: +SKIP
    ...     model_fn=lambda: FlorenceCLIP.from_preset("florence_tiny"),
    ...     make_dataset=lambda request: my_pipeline(request),
    ...     model_dir="/tmp/run", total_steps=1000, global_batch_size=256,
    ...     strategy="mirrored", precision="mixed_bfloat16", chunk_size=64,
    ...     stages=florence_stages(1000, augmented_texts_off_step=800))
    >>> result = trainer.fit()                                    # doctest: +SKIP
    >>> trainer.model.save_weights("/tmp/run/model.weights.h5")   # doctest: +SKIP
    """

    def __init__(
        self,
        model_fn,
        make_dataset,
        *,
        model_dir,
        total_steps,
        global_batch_size,
        strategy="default",
        precision="float32",
        optimizer=None,
        clip_norm=None,
        chunk_size=None,
        activation_checkpointing=False,
        optimizer_fn=None,
        stages=None,
        image_size=224,
        checkpoint_every=1000,
        max_checkpoints=3,
        max_failed_saves=3,
        log_every=10,
        deterministic=False,
        seed=0,
        verbose=1,
    ):
        if not callable(model_fn) or not callable(make_dataset):
            raise ValueError(
                "`model_fn` and `make_dataset` must be callables. "
                f"Received: model_fn={model_fn!r}, make_dataset={make_dataset!r}"
            )
        if precision not in PRECISIONS:
            raise ValueError(f"`precision` must be one of {PRECISIONS}. Received: precision={precision!r}")
        for name, value in (
            ("total_steps", total_steps),
            ("global_batch_size", global_batch_size),
            ("checkpoint_every", checkpoint_every),
            ("log_every", log_every),
            ("max_failed_saves", max_failed_saves),
        ):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size <= 0):
            raise ValueError(f"`chunk_size` must be None or a positive int. Received: chunk_size={chunk_size!r}")
        if optimizer_fn is not None and not callable(optimizer_fn):
            raise ValueError(f"`optimizer_fn` must be None or a callable. Received: optimizer_fn={optimizer_fn!r}")
        optimizer = AdamWConfig() if optimizer is None else optimizer
        if not isinstance(optimizer, AdamWConfig):
            raise ValueError(f"`optimizer` must be an AdamWConfig. Received: optimizer={optimizer!r}")
        if clip_norm is not None and not clip_norm > 0:
            raise ValueError(f"`clip_norm` must be None or > 0. Received: clip_norm={clip_norm!r}")
        if verbose not in (0, 1):
            raise ValueError(f"`verbose` must be 0 or 1. Received: verbose={verbose!r}")
        stages = list(stages) if stages is not None else [
            TrainingStage("stage1", 0, image_size, prompt_augmented_texts=False)
        ]
        if not stages or any(not isinstance(s, TrainingStage) for s in stages):
            raise ValueError(f"`stages` must be a non-empty list of TrainingStage. Received: stages={stages!r}")
        starts = [s.start_step for s in stages]
        if starts[0] != 0 or starts != sorted(set(starts)):
            raise ValueError(
                "`stages` must start at step 0 with strictly increasing start steps. "
                f"Received: start steps {starts}"
            )

        self.strategy = make_strategy(strategy)
        replicas = self.strategy.num_replicas_in_sync
        if global_batch_size % replicas:
            raise ValueError(
                "`global_batch_size` must be divisible by the number of replicas. "
                f"Received: global_batch_size={global_batch_size}, replicas={replicas}"
            )
        per_replica = global_batch_size // replicas
        if chunk_size is not None and per_replica % chunk_size:
            raise ValueError(
                "The per-replica batch must be a multiple of `chunk_size`. "
                f"Received: per-replica batch={per_replica}, chunk_size={chunk_size}"
            )
        self.model_dir = str(model_dir)
        self.total_steps = total_steps
        self.global_batch_size = global_batch_size
        self.precision = precision
        self.clip_norm = clip_norm
        self.chunk_size = chunk_size if chunk_size is not None and chunk_size < per_replica else None
        self.stages = stages
        self.checkpoint_every = checkpoint_every
        self.log_every = log_every
        self.max_failed_saves = max_failed_saves
        self.deterministic = deterministic
        self.seed = seed
        self.verbose = verbose
        self.is_chief = is_chief(self.strategy)
        self._make_dataset = make_dataset

        if deterministic:
            tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(seed)
        previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(precision)
        try:
            with self.strategy.scope():
                self.model = model_fn()
        finally:
            keras.config.set_dtype_policy(previous_policy)
        check_task(self.model, gradient_cache=self.chunk_size is not None)
        if not self.model.built:
            raise ValueError("model_fn must return a built model (all variables created).")
        self.checkpointed_layers = []
        if activation_checkpointing:
            self.checkpointed_layers = enable_activation_checkpointing(
                self.model, None if activation_checkpointing is True else activation_checkpointing
            )
        with self.strategy.scope():
            self.optimizer = (optimizer_fn or make_optimizer)(
                self.model.trainable_variables, optimizer, total_steps=total_steps, precision=precision)
        self.optimizer_config = optimizer
        self.checkpoint = TrainingCheckpoint(
            os.path.join(self.model_dir, "checkpoints"),
            self.model,
            self.optimizer,
            self.strategy,
            max_to_keep=max_checkpoints,
        )
        self._compute_gradients = GradientCache(self.model, self.chunk_size) if self.chunk_size else None
        self._train_step = tf.function(self._step_fn)

    # ------------------------------------------------------------------------------------------------
    # The step.

    def _replica_step(self, batch, stop_flag):
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync
        # Multi-worker input pipelines lose the static batch dimension; restore it (checked at run time).
        per_replica = self.global_batch_size // replicas
        batch = {k: tf.ensure_shape(v, [per_replica] + v.shape[1:].as_list()) for k, v in batch.items()}
        loss_scaling = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
        scale_loss = self.optimizer.scale_loss if loss_scaling else None
        # The gather across replicas is the Task's loss's business; the context is handed over explicitly.
        # This replica holds rows [id × per_replica, (id + 1) × per_replica) of the global batch: per-example random
        # draws (DropPath) are made for the global batch, so N replicas draw what one device would.
        replica_rows = tf.cast(context.replica_id_in_sync_group, tf.int32) * per_replica
        with example_window(replica_rows, self.global_batch_size):
            if self._compute_gradients is not None:
                loss, grads = self._compute_gradients(batch, scale_loss, replica_context=context)
            else:
                loss, grads = full_batch_gradients(self.model, batch, scale_loss, replica_context=context)
        variables = self.model.trainable_variables
        # Dense gradients: Keras 3's Adam squares an IndexedSlices gradient slice by slice, so a token
        # that occurs several times in a batch gets Σg² instead of (Σg)² in its second moment (wrong
        # updates for embedding tables). Adam's moments are dense anyway.
        grads = [
            tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, variables)
        ]
        if self.clip_norm is not None or (loss_scaling and replicas > 1):
            if replicas > 1:
                grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
            if self.clip_norm is not None:
                # Clipping is scale-equivariant: clip the scaled gradient at clip_norm × loss scale.
                threshold = self.clip_norm * (
                    tf.cast(self.optimizer.dynamic_scale, tf.float32) if loss_scaling else 1.0
                )
                grads, _ = tf.clip_by_global_norm(grads, threshold)
            if replicas > 1:
                grads = [g / replicas for g in grads]  # the optimizer's own all-reduce sums N copies
        self.optimizer.apply_gradients(zip(grads, variables))
        total_loss = context.all_reduce(tf.distribute.ReduceOp.SUM, loss)
        # tf.identity places the flag on this replica's device (a captured host tensor has none).
        stop = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.identity(stop_flag))  # > 0: a SIGTERM
        return total_loss, stop

    def _step_fn(self, iterator, stop_flag):
        batch = next(iterator)
        consumed = batch.pop(_CONSUMED, None)  # the data position: bookkeeping, not a model input
        loss, stop = self.strategy.run(self._replica_step, args=(batch, stop_flag))
        local = self.strategy.experimental_local_results
        if consumed is None:
            consumed = tf.zeros([0], tf.int64)
        else:
            consumed = local(self.strategy.run(_consumed_positions, args=(consumed,)))[0]
        return local(loss)[0], local(stop)[0], consumed

    def _task_scalars(self):
        """The Task's own scalars to log (`training_scalars()`, e.g. FlorenceCLIP's logit scale) as floats."""
        scalars = getattr(self.model, "training_scalars", None)
        return {name: float(value) for name, value in scalars().items()} if scalars is not None else {}

    # ------------------------------------------------------------------------------------------------
    # Data.

    def _stage_at(self, step):
        return [s for s in self.stages if s.start_step <= step][-1]

    def _start_positions(self, stage, data_position):
        """Per-pipeline start positions of `stage` from a checkpoint's data position, or None (start or skip).

        The checkpoint stores `[start step of the stage, position of pipeline 0, ...]`; a position of another
        stage (the run stopped at a stage boundary) does not apply.
        """
        if data_position is None or len(data_position) < 2 or int(data_position[0]) != stage.start_step:
            return None
        return [int(p) for p in data_position[1:]]

    def _distributed_dataset(self, stage, steps_done_in_stage, start_positions=None):
        """The stage's distributed dataset from where the run stands.

        `start_positions`: per input pipeline, where a positioned dataset resumes (from the checkpoint); None
        when the checkpoint has none for this stage (a fresh stage, or one saved without them).
        """
        def dataset_fn(input_context):
            pipeline, pipelines = input_context.input_pipeline_id, input_context.num_input_pipelines
            starts = start_positions
            if starts is not None and len(starts) != pipelines:
                logger.warning("The checkpoint's data position is for %d input pipeline(s), this run has %d: "
                               "the data position follows from the step instead.", len(starts), pipelines)
                starts = None
            request = DatasetRequest(
                stage=stage,
                batch_size=input_context.get_per_replica_batch_size(self.global_batch_size),
                global_batch_size=self.global_batch_size,
                num_input_pipelines=pipelines,
                input_pipeline_id=pipeline,
                seed=self.seed,
                deterministic=self.deterministic,
                start_position=starts[pipeline] if starts is not None else 0,
            )
            dataset = self._make_dataset(request)
            if not isinstance(dataset, tf.data.Dataset):
                raise ValueError(
                    f"make_dataset must return a tf.data.Dataset. Received: {type(dataset).__name__}"
                )
            _check_element_spec(dataset.element_spec, stage, self.model)
            positioned = isinstance(dataset.element_spec, dict) and POSITIONS in dataset.element_spec
            if positioned:
                spec = dataset.element_spec[POSITIONS]
                if spec.dtype != tf.int64 or spec.shape.rank != 1:
                    raise ValueError(f"'{POSITIONS}' must be int64 [batch]. Received: {spec}")
            # Each step takes one batch per local replica from this pipeline.
            local_replicas = input_context.num_replicas_in_sync // input_context.num_input_pipelines
            if steps_done_in_stage and (not positioned or starts is None):
                if positioned:
                    logger.warning("No data position for stage %s in the checkpoint: skipping the %d batches "
                                   "consumed (they are read again).", stage.name, steps_done_in_stage * local_replicas)
                dataset = dataset.skip(steps_done_in_stage * local_replicas)
            if positioned:
                def report_position(batch):
                    batch = dict(batch)
                    consumed = tf.reduce_max(batch.pop(POSITIONS)) + 1
                    batch[_CONSUMED] = tf.one_hot(pipeline, pipelines, on_value=consumed,
                                                  off_value=tf.constant(0, tf.int64), dtype=tf.int64)
                    return batch

                dataset = dataset.map(tf.autograph.experimental.do_not_convert(report_position))
            if self.deterministic:
                options = tf.data.Options()
                options.deterministic = True
                dataset = dataset.with_options(options)
            return dataset

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    # ------------------------------------------------------------------------------------------------
    # The loop.

    def fit(self):
        """Trains until `total_steps` (resuming from `model_dir` if it holds a checkpoint).

        Returns:
            A dict: `step` (steps done), `loss` (last step's loss, None if no step ran), `preempted`
            (True when stopped by SIGTERM), `checkpoint` (path of the last checkpoint written or found).

        Raises:
            NonFiniteLossError: when a step's loss is NaN or Inf (that state is not saved).
            CheckpointSaveError: the final or SIGTERM checkpoint, or `max_failed_saves` periodic ones in a row,
                could not be written (the previous checkpoint is intact).
            NoUsableCheckpointError: `model_dir` holds checkpoints but none can be restored.
        """
        step = self.checkpoint.restore_latest() or 0
        last_checkpoint = self.checkpoint.restored_path
        restored_data_position = self.checkpoint.restored_data_position
        data_position = None  # [stage start step, consumed position per input pipeline] after the last step
        failed_saves = 0
        if step:
            logger.info("Resuming from step %d of %d.", step, self.total_steps)
        result = {"step": step, "loss": None, "preempted": False, "checkpoint": last_checkpoint}
        if step >= self.total_steps:
            return result
        writer = (
            tf.summary.create_file_writer(os.path.join(self.model_dir, "tensorboard"))
            if self.is_chief
            else tf.summary.create_noop_writer()
        )
        progbar = keras.utils.Progbar(
            self.total_steps,
            verbose=self.verbose if self.is_chief else 0,
            stateful_metrics=["loss", "lr", "samples/s"] + sorted(self._task_scalars()),
        )
        window_losses, window_start, window_step = [], time.perf_counter(), step
        with _StopRequest() as stop_request, writer.as_default():
            while step < self.total_steps:
                stage = self._stage_at(step)
                later = [s.start_step for s in self.stages if s.start_step > step]
                stage_end = min(later + [self.total_steps])
                logger.info("Stage %s from step %d to %d: %s", stage.name, step, stage_end, stage)
                start_positions = self._start_positions(stage, restored_data_position)
                restored_data_position = None  # a later stage starts at its beginning
                iterator = iter(self._distributed_dataset(stage, step - stage.start_step, start_positions))
                first_step_of_stage = True
                while step < stage_end:
                    try:
                        loss, stop, consumed = self._train_step(
                            iterator, tf.constant(1 if stop_request.requested else 0, tf.int32)
                        )
                    except tf.errors.OutOfRangeError as error:
                        raise ValueError(
                            f"The dataset of stage {stage.name!r} ran out at step {step}: make_dataset "
                            "must return a repeated (infinite) dataset."
                        ) from error
                    step += 1
                    consumed = consumed.numpy()
                    if consumed.size:
                        if first_step_of_stage and start_positions is not None and len(start_positions) == \
                                consumed.size and np.any(consumed <= np.asarray(start_positions)):
                            raise ValueError(
                                "make_dataset ignored DatasetRequest.start_position: asked to start at "
                                f"{start_positions}, the first batch ended at {list(consumed - 1)}.")
                        data_position = np.concatenate([[stage.start_step], consumed]).astype(np.int64)
                    first_step_of_stage = False
                    loss = float(loss)
                    if not math.isfinite(loss):
                        raise NonFiniteLossError(step, loss, last_checkpoint)
                    result.update(step=step, loss=loss)
                    window_losses.append(loss)
                    if step % self.log_every == 0 or step == self.total_steps:
                        elapsed = max(time.perf_counter() - window_start, 1e-9)
                        scalars = {
                            "loss": float(np.mean(window_losses)),
                            "learning_rate": float(self.optimizer.learning_rate),
                            "samples_per_second": (step - window_step) * self.global_batch_size / elapsed,
                        }
                        task_scalars = self._task_scalars()
                        scalars.update(task_scalars)
                        for name, value in scalars.items():
                            tf.summary.scalar(name, value, step=step)
                        writer.flush()
                        progbar.update(
                            step,
                            values=[
                                ("loss", scalars["loss"]),
                                ("lr", scalars["learning_rate"]),
                                ("samples/s", scalars["samples_per_second"]),
                            ] + sorted(task_scalars.items()),
                        )
                        window_losses, window_start, window_step = [], time.perf_counter(), step
                    preempted = int(stop) > 0
                    if preempted or step % self.checkpoint_every == 0 or step == self.total_steps:
                        try:
                            last_checkpoint = self.checkpoint.save(step, data_position) or last_checkpoint
                            failed_saves = 0
                        except CheckpointSaveError as error:
                            failed_saves += 1
                            if preempted or step == self.total_steps or failed_saves >= self.max_failed_saves:
                                logger.error("%s Stopping; resume from %s.", error, last_checkpoint)
                                raise
                            logger.error(
                                "%s Training goes on (failed saves in a row: %d of %d allowed); the last "
                                "checkpoint is %s.", error, failed_saves, self.max_failed_saves - 1,
                                last_checkpoint,
                            )
                        result["checkpoint"] = last_checkpoint
                    if preempted:
                        logger.warning("Stopped by SIGTERM after step %d; checkpoint saved.", step)
                        result["preempted"] = True
                        return result
        return result

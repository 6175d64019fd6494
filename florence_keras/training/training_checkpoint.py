"""`TrainingCheckpoint`: model, optimizer and step, saved and restored under any strategy."""

import logging
import os

import tensorflow as tf

from florence_keras.training.distribution import is_chief
from florence_keras.training.distribution import task_info

logger = logging.getLogger(__name__)


class TrainingCheckpoint:
    """Checkpoints of the full training state in `directory` (a `tf.train.CheckpointManager`).

    Saved: every model variable (weights *and* non-trainable state, which includes the Keras
    `SeedGenerator` states of dropout / drop-path, so random draws continue exactly after a resume), every
    optimizer variable (iterations, moments, the loss scale of `mixed_float16`) and the global step.
    Variables are tracked by their order in `model.variables` / `optimizer.variables` (Keras 3 functional
    models are not themselves trackable by `tf.train.Checkpoint`), so restore with the same architecture.
    The data position is not stored: it follows from the step (see `DatasetRequest`).

    Multi-worker: every worker must call `save` (saving may run collectives); only the chief writes to
    `directory`, the others write to a temporary sub-directory that is deleted right after. `directory`
    must be on storage all workers can read, for resuming.

    Args:
        directory: where checkpoints live.
        model: the Keras model.
        optimizer: the built Keras optimizer.
        strategy: the `tf.distribute.Strategy` the variables were created under.
        max_to_keep: how many checkpoints to keep. Defaults to 3.

    Example:

    >>> checkpoint = TrainingCheckpoint("/tmp/run/checkpoints", model, optimizer, strategy)  # doctest: +SKIP
    >>> step = checkpoint.restore_latest() or 0                                              # doctest: +SKIP
    """

    def __init__(self, directory, model, optimizer, strategy, max_to_keep=3):
        if not isinstance(max_to_keep, int) or max_to_keep < 1:
            raise ValueError(f"`max_to_keep` must be an int >= 1. Received: max_to_keep={max_to_keep!r}")
        self.directory = str(directory)
        self._chief = is_chief(strategy)
        with strategy.scope():
            self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self._checkpoint = tf.train.Checkpoint(
            model_variables=list(model.variables),
            optimizer_variables=list(optimizer.variables),
            step=self._step,
        )
        if self._chief:
            self._manager = tf.train.CheckpointManager(self._checkpoint, self.directory, max_to_keep)
        else:
            _, task_id = task_info(strategy)
            self._temporary_directory = os.path.join(self.directory, f".worker_{task_id}_tmp")

    @property
    def latest(self):
        """Path of the newest checkpoint in `directory`, or None."""
        return tf.train.latest_checkpoint(self.directory)

    def restore_latest(self):
        """Restores the newest checkpoint; returns its step, or None when there is none."""
        path = self.latest
        if path is None:
            return None
        self._checkpoint.restore(path).assert_existing_objects_matched()
        step = int(self._step.numpy())
        logger.info("Restored %s (step %d).", path, step)
        return step

    def save(self, step):
        """Saves the state after `step` steps; returns the checkpoint path (the chief's)."""
        self._step.assign(step)
        if self._chief:
            path = self._manager.save(checkpoint_number=step)
            logger.info("Saved checkpoint %s.", path)
            return path
        self._checkpoint.write(os.path.join(self._temporary_directory, "ckpt"))
        tf.io.gfile.rmtree(self._temporary_directory)
        return None

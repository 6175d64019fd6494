"""`TrainingCheckpoint`: model, optimizer and step, saved and restored under any strategy.

Crash safety (docs/reliability_training.md):

* A checkpoint that can't be restored (a write cut by SIGKILL or a full disk, a truncated, zeroed or deleted
  `.index` / `.data-*` file, a bit flip caught by TensorFlow's checksums) is never fatal while an older one is
  usable: `restore_latest` logs a WARNING naming it and the error, and restores the next newest one. Candidates
  are the checkpoints listed in the `checkpoint` state file *and* every `ckpt-N.index` in the directory, so a lost
  or garbled state file doesn't restart training from step 0.
* A failed save (`ENOSPC`, any `OSError` / `tf.errors.OpError`) removes the half-written files of that save, leaves
  the previous checkpoints and the state file as they were, and raises `CheckpointSaveError` (the trainer decides
  whether to go on; see `UniCLTrainer`).
"""

import glob
import logging
import os
import re
import shutil
import time

import tensorflow as tf

from florence_keras.training.distribution import is_chief
from florence_keras.training.distribution import task_info

logger = logging.getLogger(__name__)

# Testing hook (tools/fault_injection.py): seconds to sleep inside `save`, between writing the files and recording
# the new checkpoint in the state file, so that injected signals can land inside a checkpoint write.
TEST_SAVE_DELAY_ENV = "FLORENCE_TEST_CHECKPOINT_SAVE_DELAY"

_CHECKPOINT_INDEX = re.compile(r"^ckpt-(\d+)\.index$")


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written; the previous checkpoints are untouched.

    Attributes:
        step: the step whose checkpoint failed.
        path: the checkpoint prefix that was being written.
    """

    def __init__(self, step, path, cause):
        self.step = step
        self.path = path
        super().__init__(
            f"Could not write the checkpoint of step {step} ({path}): {type(cause).__name__}: {cause}. "
            "Its partial files were removed; the previous checkpoints are intact."
        )


class NoUsableCheckpointError(RuntimeError):
    """Checkpoints exist in the directory but none of them can be restored."""


class TrainingCheckpoint:
    """Checkpoints of the full training state in `directory` (a `tf.train.CheckpointManager`).

    Saved: every model variable (weights *and* non-trainable state, which includes the Keras
    `SeedGenerator` states of dropout / drop-path, so random draws continue exactly after a resume), every
    optimizer variable (iterations, moments, the loss scale of `mixed_float16`) and the global step.
    Variables are tracked by their order in `model.variables` / `optimizer.variables` (Keras 3 functional
    models are not themselves trackable by `tf.train.Checkpoint`), so restore with the same architecture.
    With the step goes an optional data position, an int64 vector that the trainer gives `save` (the input
    pipelines' positions, see `DatasetRequest`); `restore_latest` reads it back into `restored_data_position`
    (None when the checkpoint has none: one written without it, or by an older version), whatever its length,
    so a run resumed with another number of workers still restores.

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
        # The same value on every worker, so a plain (host) variable of any length.
        self._data_position = tf.Variable(tf.zeros([0], tf.int64), shape=tf.TensorShape([None]), trainable=False,
                                          name="data_position")
        state = {"model_variables": list(model.variables), "optimizer_variables": list(optimizer.variables),
                 "step": self._step}
        self._checkpoint = tf.train.Checkpoint(**state, data_position=self._data_position)
        # Restores everything but the data position, strictly (the position is read on its own, leniently).
        self._restore_checkpoint = tf.train.Checkpoint(**state)
        self.restored_path = None
        self.restored_data_position = None
        if self._chief:
            self._manager = tf.train.CheckpointManager(self._checkpoint, self.directory, max_to_keep)
            self._remove_partial_writes()
        else:
            _, task_id = task_info(strategy)
            self._temporary_directory = os.path.join(self.directory, f".worker_{task_id}_tmp")

    @property
    def latest(self):
        """Path of the newest checkpoint in `directory` according to its state file, or None.

        This may name a checkpoint that turns out to be unusable; `restored_path` is the one `restore_latest`
        actually restored.
        """
        return tf.train.latest_checkpoint(self.directory)

    def candidates(self):
        """Checkpoint prefixes to try, newest step first: the state file's list plus every `ckpt-N.index`."""
        found = {}
        try:
            state = tf.train.get_checkpoint_state(self.directory)
        except (tf.errors.OpError, ValueError) as error:  # a garbled state file
            logger.warning("Unreadable checkpoint state file in %s (%s); scanning the directory.",
                           self.directory, error)
            state = None
        if state is not None:
            for path in list(state.all_model_checkpoint_paths) + [state.model_checkpoint_path]:
                if not path:
                    continue
                if not os.path.isabs(path) and "://" not in path:
                    path = os.path.join(self.directory, path)
                match = re.search(r"-(\d+)$", path)
                if match:
                    found[path] = int(match.group(1))
        if tf.io.gfile.isdir(self.directory):
            for name in tf.io.gfile.listdir(self.directory):
                match = _CHECKPOINT_INDEX.match(name)
                if match:
                    found.setdefault(os.path.join(self.directory, name[: -len(".index")]), int(match.group(1)))
        return [path for path, _ in sorted(found.items(), key=lambda item: item[1], reverse=True)]

    def restore_latest(self):
        """Restores the newest usable checkpoint; returns its step, or None when the directory holds none.

        A checkpoint that fails to restore (missing, truncated, zeroed or corrupt files) is skipped with a WARNING
        naming it, and the next newest one is tried.

        Raises:
            NoUsableCheckpointError: checkpoints exist but none can be restored (the variables may then hold a
                partial restore: don't train on).
        """
        candidates = self.candidates()
        failures = []
        for path in candidates:
            try:
                self._restore_checkpoint.restore(path).assert_existing_objects_matched().expect_partial()
                data_position = _read_data_position(path)
            except (tf.errors.OpError, IndexError, ValueError, AssertionError, OSError) as error:
                message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
                failures.append((path, f"{type(error).__name__}: {message}"))
                logger.warning(
                    "Checkpoint %s can't be restored (%s: %s); falling back to the previous checkpoint.",
                    path, type(error).__name__, message,
                )
                continue
            step = int(self._step.numpy())
            self.restored_path = path
            self.restored_data_position = data_position
            if failures:
                logger.warning("Restored %s (step %d) after skipping %d unusable newer checkpoint(s): %s.",
                               path, step, len(failures), ", ".join(p for p, _ in failures))
            else:
                logger.info("Restored %s (step %d).", path, step)
            return step
        if failures:
            details = "; ".join(f"{path}: {reason}" for path, reason in failures)
            raise NoUsableCheckpointError(
                f"None of the {len(failures)} checkpoint(s) in {self.directory} can be restored: {details}. "
                "Move them away to start from scratch."
            )
        return None

    def save(self, step, data_position=None):
        """Saves the state after `step` steps; returns the checkpoint path (the chief's).

        Args:
            step: int, the steps done.
            data_position: optional 1-D int64 array stored with the step (the trainer's input positions);
                None stores an empty one.

        Raises:
            CheckpointSaveError: the write failed (e.g. ENOSPC); its partial files are removed and the previous
                checkpoints and the state file are unchanged.
        """
        self._step.assign(step)
        self._data_position.assign(
            tf.zeros([0], tf.int64) if data_position is None else tf.reshape(tf.constant(data_position, tf.int64), [-1])
        )
        if self._chief:
            prefix = os.path.join(self.directory, f"ckpt-{step}")
            delay = float(os.environ.get(TEST_SAVE_DELAY_ENV, "0") or 0)
            previous_latest = self._manager.latest_checkpoint
            try:
                if delay > 0:
                    path = self._save_with_test_delay(step, delay)
                else:
                    path = self._manager.save(checkpoint_number=step)
            except (OSError, tf.errors.OpError) as error:
                # Forget the failed checkpoint (the manager may have recorded it before its state write failed).
                self._manager._maybe_delete.pop(prefix, None)  # pylint: disable=protected-access
                self._manager._latest_checkpoint = previous_latest  # pylint: disable=protected-access
                self._remove_files_of(prefix)
                self._remove_partial_writes()
                raise CheckpointSaveError(step, prefix, error) from error
            logger.info("Saved checkpoint %s.", path)
            return path
        try:
            self._checkpoint.write(os.path.join(self._temporary_directory, "ckpt"))
        finally:
            if tf.io.gfile.exists(self._temporary_directory):
                tf.io.gfile.rmtree(self._temporary_directory)
        return None

    def _save_with_test_delay(self, step, delay):
        """`manager.save` with a pause between writing the files and updating the state file (testing only)."""
        original = self._manager._record_state  # pylint: disable=protected-access

        def delayed_record_state():
            time.sleep(delay)
            original()

        self._manager._record_state = delayed_record_state  # pylint: disable=protected-access
        try:
            return self._manager.save(checkpoint_number=step)
        finally:
            self._manager._record_state = original  # pylint: disable=protected-access

    def _remove_files_of(self, prefix):
        """Deletes the files of one (failed) checkpoint write, ignoring errors."""
        for path in glob.glob(glob.escape(prefix) + ".index") + glob.glob(glob.escape(prefix) + ".data-*"):
            try:
                os.remove(path)
            except OSError:
                pass

    def _remove_partial_writes(self):
        """Deletes the `ckpt-N_temp` directories TensorFlow leaves behind when a write is cut."""
        if "://" in self.directory or not os.path.isdir(self.directory):
            return
        for path in glob.glob(os.path.join(glob.escape(self.directory), "ckpt-*_temp*")):
            logger.warning("Removing %s, left by an interrupted checkpoint write.", path)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.remove(path)
                except OSError:
                    pass


_DATA_POSITION_KEY = "data_position/.ATTRIBUTES/VARIABLE_VALUE"


def _read_data_position(path):
    """The data position stored in checkpoint `path` as a NumPy int64 vector, or None if it holds none."""
    reader = tf.train.load_checkpoint(path)
    if not reader.has_tensor(_DATA_POSITION_KEY):
        return None
    value = reader.get_tensor(_DATA_POSITION_KEY)
    return value if value.size else None

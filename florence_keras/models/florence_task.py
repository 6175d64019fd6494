"""FlorenceTask: the base of every Florence keras-hub Task (CLIP, classifier, and the adapters to come)."""

import inspect
import logging
import os

import keras
from keras import ops
from keras_hub.models import Task

from florence_keras.models import preset_directory
from florence_keras.models import preset_manifest
from florence_keras.models import preset_registry
from florence_keras.models import training_batch

logger = logging.getLogger(__name__)


class _classproperty:
    """A read-only property of the class (keras-hub's own helper is private, so we keep this one-liner)."""

    def __init__(self, getter):
        self.getter = getter

    def __get__(self, instance, owner):
        return self.getter(owner)


class FlorenceTask(Task):
    """Base class of the Florence Tasks: one preset story for all of them.

    A Florence Task is a keras-hub `Task` (backbone + preprocessor + head) that
    loads from:

    * an architecture preset name (`florence_mini` ... `florence_huge`): a
      randomly initialised model at the published size, built by
      `from_architecture`;
    * a trained preset shipped in the package (see `presets`) or a preset
      directory: loaded by `preset_directory.load_task`, which verifies the
      manifest and names any bad file;
    * a keras-hub handle (`hf://`, `kaggle://`, `gs://`): loaded by keras-hub.

    `save_to_preset` writes keras-hub's layout plus `manifest.json` (the SHA-256
    of every file) and optional training metadata.

    Subclasses set `backbone_cls` / `preprocessor_cls` as keras-hub expects and
    may override `architecture_preprocessor` when their preprocessor is not the
    CLIP one.

    Training: every Florence Task owns its loss. `compile()` resolves `"auto"` to
    the subclass's `default_optimizer()` / `default_loss()` / `default_metrics()`
    and keeps the loss as `task_loss`; the subclass's `compute_loss` calls it
    (through `task_loss_or_raise`) so a loss that gathers across replicas runs in
    the replica context, where Keras's compiled-loss machinery cannot.
    """

    # ------------------------------------------------------------------------------------------------
    # Training: one compile for every Task; each subclass names its defaults and writes `compute_loss`.

    def default_optimizer(self):
        """The optimizer `compile(optimizer="auto")` uses: AdamW with `AdamWConfig()` at a constant rate."""
        from florence_keras.models.adamw_config import AdamWConfig

        return AdamWConfig().constant_rate_optimizer(self.trainable_variables)

    def default_loss(self):
        """The loss `compile(loss="auto")` uses."""
        raise NotImplementedError(f"{type(self).__name__} must define `default_loss()`.")

    def default_metrics(self):
        """The metrics `compile(metrics="auto")` uses (none by default: the loss is reported)."""
        return None

    def compile(self, optimizer="auto", loss="auto", *, metrics="auto", **kwargs):
        """Configures `fit` / `evaluate` with the Task's defaults.

        Args:
            optimizer: `"auto"` (`default_optimizer()`), an optimizer name or a `keras.optimizers.Optimizer`.
            loss: `"auto"` (`default_loss()`) or a loss called by `compute_loss`.
            metrics: `"auto"` (`default_metrics()`) or a list of Keras metrics.
            **kwargs: `keras.Model.compile` arguments.
        """
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = self.default_optimizer()
        if isinstance(loss, str) and loss == "auto":
            loss = self.default_loss()
        if isinstance(metrics, str) and metrics == "auto":
            metrics = self.default_metrics()
        # The loss is the Task's own (`compute_loss` calls it); Keras's compiled-loss machinery would build
        # it symbolically in the strategy's cross-replica context, where no gather is possible.
        self.task_loss = loss
        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None and getattr(self, "task_loss", None) is not None:
            config["loss"] = keras.saving.serialize_keras_object(self.task_loss)
        return config

    def compile_from_config(self, config):
        # `.keras` loading: re-compile with the saved optimizer and the Task's loss, then build the
        # optimizer so its saved variables can be restored (what Keras does for a non-custom `compile`).
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def task_loss_or_raise(self):
        """The compiled loss; a clear error when the Task was compiled with `loss=None`."""
        if getattr(self, "task_loss", None) is None:
            raise ValueError(
                f"{type(self).__name__} was compiled with `loss=None`; use `compile()` or give a loss.")
        return self.task_loss

    def with_layer_losses(self, loss):
        """`loss` plus the layers' own losses (`self.losses`), if any."""
        for extra in self.losses:
            loss = loss + ops.cast(ops.sum(extra), loss.dtype)
        return loss

    # The batches the toolkit's trainer feeds `replica_loss`: key -> (dtype, rank), batch first (see
    # `models/training_batch.py`). The default is the image-text batch of UniCL; a Task with other inputs
    # (depth maps, boxes, clips) names its own keys.
    training_batch_spec = {"images": ("float", 4), "token_ids": ("int32", 2), "labels": ("int64", 1)}

    def check_training_batch(self, element_spec, image_size=None):
        """Raises a ValueError naming the problem unless batches of `element_spec` fit this Task's training.

        Called by the trainer on its data pipeline's `element_spec` before the first step.

        Args:
            element_spec: the training dataset's `element_spec`.
            image_size: int or None, the resolution the training stage asks for.
        """
        training_batch.check_batch_spec(element_spec, self.training_batch_spec, image_size, type(self).__name__)

    @_classproperty
    def presets(cls):
        """The presets this Task loads, as keras-hub lists them: `{name: {"metadata": {...}, ...}}`."""
        return preset_registry.presets_for(cls)

    @classmethod
    def architecture_preprocessor(cls, name, image_size=224):
        """The preprocessor of a randomly initialised architecture preset (default: CLIP's)."""
        return preset_registry.build_architecture_preprocessor(name, image_size)

    @classmethod
    def from_architecture(cls, preset, image_size=224, dtype=None, **kwargs):
        """A randomly initialised Task at an architecture preset's published size.

        Args:
            preset: an architecture preset name (`florence_mini` ... `florence_huge`).
            image_size: int, square input size.
            dtype: the backbone's dtype policy.
            **kwargs: arguments of the backbone's constructor (`image_encoder`,
                `text_encoder` dicts merged into the preset's, `projection_dim`, ...)
                override the architecture; any other argument goes to the Task's
                constructor.
        """
        if cls.backbone_cls is None:
            raise ValueError(f"{cls.__name__} is a base class; build a concrete Task such as FlorenceCLIP.")
        backbone_args = set(inspect.signature(cls.backbone_cls.__init__).parameters) - {"self", "dtype", "kwargs"}
        overrides = {k: v for k, v in kwargs.items() if k in backbone_args}
        task_kwargs = {k: v for k, v in kwargs.items() if k not in backbone_args}
        backbone = preset_registry.build_architecture_backbone(preset, image_size=image_size, dtype=dtype, **overrides)
        return cls(backbone=backbone, preprocessor=cls.architecture_preprocessor(preset, image_size), **task_kwargs)

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Loads the Task from a preset name, directory or handle.

        A preset directory saved by `save_to_preset` carries a `manifest.json`
        (SHA-256 of every file): it is verified first, and any file that changed
        since the save (a single flipped bit) is an error naming the file. A
        directory without a manifest (saved by keras-hub or an older
        florence_keras) loads with a logged warning. keras-hub handles
        (`hf://`, `kaggle://`, `gs://`) are loaded by keras-hub, unverified (a
        warning says so). See `florence_keras.models.preset_directory`.

        Args:
            preset: an architecture preset (random init, see `from_architecture`),
                a trained preset listed in `cls.presets`, a preset directory, or a
                keras-hub handle.
            load_weights: bool; ignored for architecture presets.
            **kwargs: for architecture presets, `from_architecture`'s arguments;
                otherwise `dtype` (the backbone's) and the Task constructor's.

        Raises:
            ValueError: an unknown name (the message lists the valid ones).
            PresetFileError: (a `ValueError`) a file of the preset that is
                missing, damaged, holds an invalid config, or changed since it was
                saved; the message names the file.
        """
        resolved = preset_registry.resolve(preset, valid_names=sorted(cls.presets))
        if resolved.kind == "architecture":
            return cls.from_architecture(preset, **kwargs)
        if os.path.isdir(resolved.path):
            return preset_directory.load_task(cls, resolved.path, load_weights=load_weights, **kwargs)
        logger.warning("Loading %s through keras-hub: its files are not verified by florence_keras.", preset)
        return super().from_preset(resolved.path, load_weights=load_weights, **kwargs)

    def save_to_preset(self, preset_dir, max_shard_size=10, metadata=None):
        """Saves the Task as a keras-hub preset directory with an integrity manifest.

        Args:
            preset_dir: the directory (created if needed).
            max_shard_size: passed to keras-hub (florence_keras loads unsharded
                weights only: every Florence model is below the 10 GB default).
            metadata: optional dict of JSON values merged into `metadata.json`
                (how the model was trained and scored). Written before the
                manifest, so the manifest covers it; results known only later go
                through `preset_directory.update_metadata`.
        """
        manifest = os.path.join(preset_dir, preset_manifest.MANIFEST_FILE)
        if os.path.lexists(manifest):  # a stale manifest must never vouch for the new files
            os.remove(manifest)
        super().save_to_preset(preset_dir, max_shard_size=max_shard_size)
        if metadata:
            preset_directory.merge_metadata(preset_dir, metadata)
        preset_manifest.write_manifest(preset_dir)

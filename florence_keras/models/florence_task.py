"""FlorenceTask: the base of every Florence keras-hub Task (CLIP, classifier, and the adapters to come)."""

import inspect

from keras_hub.models import Task

from florence_keras.models import preset_registry


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
    * a trained preset shipped in the package (see `presets`), a preset
      directory, or a keras-hub handle (`hf://`, `kaggle://`, `gs://`): loaded
      by keras-hub after the directory's files are checked
      (`preset_registry.validate_preset_dir`).

    Subclasses set `backbone_cls` / `preprocessor_cls` as keras-hub expects and
    may override `architecture_preprocessor` when their preprocessor is not the
    CLIP one.
    """

    @_classproperty
    def presets(cls):
        """The presets this Task loads, as keras-hub lists them: `{name: {"metadata": {...}, ...}}`."""
        return preset_registry.presets_for(cls)

    @classmethod
    def architecture_preprocessor(cls, name, image_size=224):
        """The preprocessor of a randomly initialised architecture preset (default: CLIP's)."""
        return preset_registry.build_architecture_preprocessor(name, image_size)

    @classmethod
    def from_architecture(cls, name, image_size=224, dtype=None, **kwargs):
        """A randomly initialised Task at an architecture preset's published size.

        Args:
            name: an architecture preset name (`florence_mini` ... `florence_huge`).
            image_size: int, square input size.
            dtype: the backbone's dtype policy.
            **kwargs: arguments of the backbone's constructor (`image_encoder`,
                `text_encoder` dicts merged into the preset's, `projection_dim`, ...)
                override the architecture; any other argument goes to the Task's
                constructor.
        """
        backbone_args = set(inspect.signature(cls.backbone_cls.__init__).parameters) - {"self", "dtype", "kwargs"}
        overrides = {k: v for k, v in kwargs.items() if k in backbone_args}
        task_kwargs = {k: v for k, v in kwargs.items() if k not in backbone_args}
        backbone = preset_registry.build_architecture_backbone(name, image_size=image_size, dtype=dtype, **overrides)
        return cls(backbone=backbone, preprocessor=cls.architecture_preprocessor(name, image_size), **task_kwargs)

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Loads the Task from a preset name, directory or handle.

        Args:
            preset: an architecture preset (random init, see `from_architecture`),
                a trained preset listed in `cls.presets`, a preset directory, or a
                keras-hub handle (`hf://`, `kaggle://`, `gs://`).
            load_weights: bool; ignored for architecture presets.
            **kwargs: for architecture presets, `from_architecture`'s arguments;
                otherwise passed to keras-hub's `Task.from_preset`.

        Raises:
            ValueError: an unknown name (the message lists the valid ones), or a
                preset directory whose files are missing, damaged or changed since
                they were saved; the message names the file.
        """
        resolved = preset_registry.resolve(preset, valid_names=sorted(cls.presets))
        if resolved.kind == "architecture":
            return cls.from_architecture(preset, **kwargs)
        preset_registry.validate_preset_dir(resolved.path, load_weights)
        return super().from_preset(resolved.path, load_weights=load_weights, **kwargs)

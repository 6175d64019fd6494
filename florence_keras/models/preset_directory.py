"""Saving a Florence Task as a preset directory and loading it back: the one place that reads its files.

The layout is keras-hub's (`task.json`, `config.json`, `preprocessor.json`,
`tokenizer.json`, `image_converter.json`, `metadata.json`, `model.weights.h5`,
`task.weights.h5`, `assets/tokenizer/{vocabulary.json,merges.txt}`) plus
`manifest.json` (see `preset_manifest`), so keras-hub loads these presets too.

Loading, in order; every step names the file it reads when the file is bad
(`PresetFileError`, a `ValueError`):

1. `manifest.json`: when present every listed file is re-hashed (a flipped bit
   is an error naming the file), and a file the loader needs that the manifest
   does not list is refused. A preset without a manifest (saved by keras-hub or
   an older florence_keras) loads with a logged warning: nothing proves its
   files are the ones that were saved.
2. The JSON configs that are used, each parsed and checked against the
   constructors' expectations (`preset_schema`) before anything is built.
3. The Task is deserialized in Keras safe mode. A `ValueError` of a constructor
   refusing a value that came from the file is reported with the file's name;
   every other exception is a bug and propagates unchanged.
4. The tokenizer's `vocabulary.json` / `merges.txt`, parsed and checked here.
5. The weights (`model.weights.h5`, `task.weights.h5`): without a manifest
   every dataset is first read with h5py to find a damaged container.
   `task.weights.h5` is read only when `task.json` names the Task asked for
   (or a subclass); a preset of another Task (a `FlorenceFusionPretrainer`
   preset loaded as `FlorenceVQA`) gives the asked Task built on the preset's
   backbone, with the backbone's weights only, as keras-hub's loader does.
"""

import copy
import json
import logging
import os

import keras
from keras_hub.tokenizers import BytePairTokenizer

from florence_keras.models import preset_files
from florence_keras.models import preset_manifest
from florence_keras.models import preset_schema
from florence_keras.models.preset_files import PresetFileError

logger = logging.getLogger(__name__)

TASK_FILE = "task.json"
BACKBONE_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor.json"
TOKENIZER_FILE = "tokenizer.json"
IMAGE_CONVERTER_FILE = "image_converter.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"
TASK_WEIGHTS_FILE = "task.weights.h5"
SHARDED_WEIGHTS_FILE = "model.weights.json"
ASSET_DIR = "assets"
VOCABULARY_FILE = "vocabulary.json"
MERGES_FILE = "merges.txt"


class _Reader:
    """Paths of one preset directory, refusing files the manifest does not vouch for."""

    def __init__(self, preset_dir, verified):
        self.preset_dir = preset_dir
        self.verified = verified  # set of relative paths checked against the manifest, or None

    def path(self, relative):
        full = os.path.join(self.preset_dir, *relative.split("/"))
        if self.verified is not None and relative not in self.verified and os.path.lexists(full):
            raise PresetFileError(
                full, f"is not listed in {preset_manifest.MANIFEST_FILE}: it was added after the preset was saved."
            )
        return full

    def exists(self, relative):
        return os.path.lexists(self.path(relative))

    def config(self, relative, allowed=()):
        """A config file: parsed and schema-checked. Returns `(path, document)`."""
        path = self.path(relative)
        document = preset_files.read_json_object(path)
        preset_schema.validate_document(path, document, allowed)
        return path, document


def _registered(cls):
    return keras.saving.get_registered_name(cls)


def _class_of(document):
    return keras.saving.get_registered_object(document["registered_name"])


def _deserialize(path, document):
    """Builds the object a checked config file describes, in Keras safe mode."""
    try:
        return keras.saving.deserialize_keras_object(copy.deepcopy(document), safe_mode=True)
    except ValueError as e:  # a constructor refusing a value read from the file
        raise PresetFileError(path, f"holds a config that {document.get('class_name')} refused: {e}"[:2000]) from e


def _resolve_dtype(backbone_document, dtype):
    """keras-hub's rule: an explicit `dtype`; else a saved float policy follows the current Keras policy."""
    if dtype is not None:
        return dtype
    saved = backbone_document["config"].get("dtype")
    name = saved["config"]["name"] if isinstance(saved, dict) else saved
    if isinstance(name, str) and "float" in name:
        return keras.config.dtype_policy()
    return saved


def load_task(cls, preset_dir, load_weights=True, **kwargs):
    """Loads a `cls` Task from a local preset directory (see the module docstring).

    Args:
        cls: the `FlorenceTask` subclass asked for.
        preset_dir: the directory.
        load_weights: bool.
        **kwargs: `dtype` for the backbone; anything else goes to the Task's
            constructor (as keras-hub's `from_preset` does).

    Raises:
        PresetFileError: a missing, damaged or changed file, named.
    """
    verified = preset_manifest.verify_manifest(preset_dir)
    if verified is None:
        logger.warning(
            "Preset %s has no %s: its files cannot be checked against what was saved (a preset saved by "
            "keras-hub or an older florence_keras). Save it again with `save_to_preset` to add one.",
            preset_dir, preset_manifest.MANIFEST_FILE,
        )
    reader = _Reader(preset_dir, verified)
    if reader.exists(SHARDED_WEIGHTS_FILE) and not reader.exists(WEIGHTS_FILE):
        raise PresetFileError(reader.path(SHARDED_WEIGHTS_FILE),
                              "sharded weights are not supported by florence_keras presets (models < 10 GB).")
    backbone_classes = (_registered(cls.backbone_cls),) if cls.backbone_cls else ()
    backbone_path, backbone_document = reader.config(BACKBONE_FILE, backbone_classes)
    dtype = _resolve_dtype(backbone_document, kwargs.pop("dtype", None))

    task_document = None
    if reader.exists(TASK_FILE):
        task_path, task_document = reader.config(TASK_FILE)
        saved_cls = _class_of(task_document)
        if not issubclass(saved_cls, cls):
            # A preset of another Task: build `cls` from its backbone, and load only the backbone's weights
            # (`task.weights.h5` holds the other Task's heads), as keras-hub's loader does.
            logger.info("Preset %s holds a %s, not a %s: building a %s on its backbone (backbone weights only).",
                        preset_dir, saved_cls.__name__, cls.__name__, cls.__name__)
            task_document = None
    same_task = task_document is not None
    if same_task:
        task_document = copy.deepcopy(task_document)
        if isinstance(task_document["config"].get("backbone"), dict):
            task_document["config"]["backbone"]["config"]["dtype"] = dtype
        task_document["config"].update(kwargs)
        task = _deserialize(task_path, task_document)
    else:
        if cls.backbone_cls is None:
            raise PresetFileError(reader.path(TASK_FILE), f"names no {cls.__name__}; load it with its Task class.")
        backbone_document = copy.deepcopy(backbone_document)
        backbone_document["config"]["dtype"] = dtype
        backbone = _deserialize(backbone_path, backbone_document)
        if "preprocessor" not in kwargs and cls.preprocessor_cls is not None:
            kwargs["preprocessor"] = _load_preprocessor(reader, cls.preprocessor_cls)
        task = cls(backbone=backbone, **kwargs)

    if task.preprocessor is not None:
        _load_tokenizer_assets(reader, task)
    if load_weights:
        if same_task and reader.exists(TASK_WEIGHTS_FILE) and task.has_task_weights() and "num_classes" not in kwargs:
            _load_weights(reader, TASK_WEIGHTS_FILE, task.load_task_weights, verified)
        _load_weights(reader, WEIGHTS_FILE, task.backbone.load_weights, verified)
    return task


def _load_preprocessor(reader, preprocessor_cls):
    """The preprocessor of a preset without a (matching) task.json: its own file, or one built from its parts."""
    if reader.exists(PREPROCESSOR_FILE):
        path, document = reader.config(PREPROCESSOR_FILE)
        if issubclass(_class_of(document), preprocessor_cls):
            return _deserialize(path, document)
    parts = {}
    for key, part_cls, relative in (("tokenizer", preprocessor_cls.tokenizer_cls, TOKENIZER_FILE),
                                    ("image_converter", preprocessor_cls.image_converter_cls, IMAGE_CONVERTER_FILE)):
        if part_cls is not None:
            path, document = reader.config(relative, (_registered(part_cls),))
            parts[key] = _deserialize(path, document)
    return preprocessor_cls(**parts)


def _load_tokenizer_assets(reader, task):
    """Reads the vocabulary and merges of a BPE tokenizer from `assets/` and sets them."""
    tokenizer = getattr(task.preprocessor, "tokenizer", None)
    if tokenizer is None:
        return
    if not isinstance(tokenizer, BytePairTokenizer):
        raise TypeError(f"florence_keras presets read BPE tokenizer assets only; found {type(tokenizer).__name__}.")
    folder = f"{ASSET_DIR}/{tokenizer.config_file.split('.')[0]}"
    vocabulary_path = reader.path(f"{folder}/{VOCABULARY_FILE}")
    vocabulary = preset_files.read_vocabulary(vocabulary_path, required_tokens=tokenizer.special_tokens)
    text_encoder = getattr(task.backbone, "text_encoder", None)
    vocabulary_size = getattr(text_encoder, "vocabulary_size", None)
    if vocabulary_size is not None and max(vocabulary.values()) >= vocabulary_size:
        raise PresetFileError(
            vocabulary_path, f"holds id {max(vocabulary.values())}, beyond the text encoder's vocabulary_size="
            f"{vocabulary_size}."
        )
    merges = preset_files.read_merges(reader.path(f"{folder}/{MERGES_FILE}"), vocabulary)
    tokenizer.set_vocabulary_and_merges(vocabulary, merges)


def _load_weights(reader, relative, load, verified):
    path = reader.path(relative)
    if verified is None:
        preset_files.check_weights_file(path)  # a verified file is byte-identical to the saved one
    elif not os.path.isfile(path):
        preset_files.read_bytes(path)  # raises: missing or not a file
    try:
        load(path)
    except ValueError as e:  # Keras: the file's variables do not fit the model (another model's weights)
        raise PresetFileError(path, f"does not hold this model's weights: {e}"[:2000]) from e


def update_metadata(preset_dir, metadata):
    """Merges `metadata` into a saved preset's `metadata.json` and re-writes its manifest.

    The preset is verified first, so a file damaged since it was saved is not
    re-signed. For results known only after saving (held-out scores).
    """
    verified = preset_manifest.verify_manifest(preset_dir)
    if verified is None:
        raise PresetFileError(preset_dir, f"has no {preset_manifest.MANIFEST_FILE}; save it with `save_to_preset`.")
    merge_metadata(preset_dir, metadata)
    preset_manifest.write_manifest(preset_dir)


def merge_metadata(preset_dir, metadata):
    """Merges `metadata` (JSON values) into `metadata.json`, written atomically."""
    path = os.path.join(preset_dir, METADATA_FILE)
    document = preset_files.read_json_object(path)
    document.update(metadata)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)

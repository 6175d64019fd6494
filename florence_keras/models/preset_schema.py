"""Checks a preset's serialized Keras configs against what the Florence constructors accept, before they run.

A config file (`task.json`, `config.json`, `preprocessor.json`, ...) holds a
tree of serialized Keras objects `{"module", "class_name", "config",
"registered_name"}`. `validate_object` walks it and raises `PresetFileError`
naming the file and the path inside it (`config.backbone.config.image_encoder
.config.depths[0]`) when:

* an object is not a registered florence_keras class of the kind expected at
  that place (nothing else is deserialized: no `Lambda`, no module that Keras
  would import), or its `module` / `class_name` do not match the class;
* an argument has the wrong type or is out of range (`CONFIG_SCHEMAS`), or is
  not an argument of the class's constructor;
* the model it describes would hold more than `MAX_MODEL_ELEMENTS` numbers
  (weights plus the attention masks and index tables built with it) — a config
  asking for petabytes is damaged, not a model.

Classes without an entry in `CONFIG_SCHEMAS` (new Tasks) get the structural
checks and the constructor-signature check; give them an entry for type checks.
Values that pass here but are still refused by a constructor raise its own
`ValueError`, which the loader reports with the file name.
"""

import inspect
import math

import keras

from florence_keras.models.preset_files import PresetFileError

# 2**31 numbers (8 GiB in float32): 2.3x florence_huge (~0.9e9 weights).
MAX_MODEL_ELEMENTS = 2**31
MAX_DIM = 2**20
MAX_IMAGE_SIDE = 2**14
MAX_SEQUENCE_LENGTH = 2**16
OBJECT_KEYS = {"module", "class_name", "config", "registered_name"}
DTYPE_POLICY_CLASSES = ("DTypePolicy", "FloatDTypePolicy")
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "lanczos3", "lanczos5", "area")


class _Invalid(Exception):
    def __init__(self, where, message):
        super().__init__(message)
        self.where = where
        self.message = message


# --- Value validators: each is `check(value, where)` raising `_Invalid`. ---------------------------------------


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def integer(low, high):
    def check(value, where):
        if not _is_int(value) or not low <= value <= high:
            raise _Invalid(where, f"must be an int in [{low}, {high}]; found {value!r}"[:300])

    return check


def number(low, high, low_open=False):
    def check(value, where):
        if not _is_number(value) or not (low < value if low_open else low <= value) or value > high:
            bracket = "(" if low_open else "["
            raise _Invalid(where, f"must be a finite number in {bracket}{low}, {high}]; found {value!r}"[:300])

    return check


def boolean(value, where):
    if not isinstance(value, bool):
        raise _Invalid(where, f"must be true or false; found {value!r}"[:300])


def string(value, where):
    if not isinstance(value, str):
        raise _Invalid(where, f"must be a string; found {value!r}"[:300])


def one_of(*choices):
    def check(value, where):
        if not isinstance(value, str) or value not in choices:
            raise _Invalid(where, f"must be one of {list(choices)}; found {value!r}"[:300])

    return check


def optional(inner):
    def check(value, where):
        return None if value is None else inner(value, where)

    return check


def list_of(item, min_length, max_length):
    def check(value, where):
        if not isinstance(value, list) or not min_length <= len(value) <= max_length:
            raise _Invalid(where, f"must be a list of {min_length} to {max_length} items; found {value!r}"[:300])
        for index, element in enumerate(value):
            item(element, f"{where}[{index}]")

    return check


def dtype(value, where):
    """A dtype policy: a name (`"float32"`, `"mixed_bfloat16"`, ...) or a serialized `DTypePolicy`."""
    if value is None:
        return
    if isinstance(value, dict):
        if set(value) != OBJECT_KEYS or value.get("module") != "keras" or value.get("registered_name") is not None \
                or value.get("class_name") not in DTYPE_POLICY_CLASSES:
            raise _Invalid(where, f"must be a dtype name or a serialized keras DTypePolicy; found {value!r}"[:300])
        config = value["config"]
        if not isinstance(config, dict) or set(config) != {"name"}:
            raise _Invalid(f"{where}.config", f"must be {{'name': <policy>}}; found {config!r}"[:300])
        value, where = config["name"], f"{where}.config.name"
    if not isinstance(value, str):
        raise _Invalid(where, f"must be a dtype policy name; found {value!r}"[:300])
    try:
        keras.DTypePolicy(value)
    except ValueError as e:
        raise _Invalid(where, f"is not a dtype policy Keras knows: {e}"[:300]) from e


def keras_object(*registered_names):
    """A nested serialized object whose class is (a subclass of) one of `registered_names`."""

    def check(value, where):
        return validate_object(value, where, registered_names)  # the size of the nested model

    return check


def _from_assets(value, where):
    raise _Invalid(where, "must not be set: a preset's vocabulary and merges are its assets/ files")


positive = integer(1, MAX_DIM)
fraction = number(0.0, 1.0)
epsilon = number(0.0, 1.0, low_open=True)


# --- Size of the model a config describes (weights + buffers built with it). ------------------------------------


def _coswin_elements(config):
    embed = config["embed_dim"]
    depths, heads = config["depths"], config["num_heads"]
    window = config["window_size"]
    patch = config.get("patch_size", 4)
    height, width, channels = config.get("image_shape", (224, 224, 3))
    ratio = config.get("mlp_ratio", 4.0)
    total = 49 * channels * embed + 4 * embed  # stem (7x7 conv; a linear stem is smaller) and its norm
    side_h, side_w = -(-height // patch), -(-width // patch)
    for stage, depth in enumerate(depths):
        dim = embed * 2**stage
        w = min(window, side_h, side_w)
        shifted = min(side_h, side_w) > window
        windows = -(-side_h // w) * -(-side_w // w)
        per_block = 4 * dim * dim + 2 * dim * dim * ratio + (2 * w - 1) ** 2 * heads[min(stage, len(heads) - 1)]
        total += depth * (per_block + w**4) + (depth // 2) * windows * w**4 * shifted
        if stage + 1 < len(depths):
            total += 9 * dim * 2 * dim  # 3x3 conv merging (linear merging is smaller)
            side_h, side_w = -(-side_h // 2), -(-side_w // 2)
    return total


def _text_elements(config):
    hidden = config["hidden_dim"]
    vocabulary = config.get("vocabulary_size", 49408)
    length = config.get("max_sequence_length", 77)
    intermediate = config.get("intermediate_dim") or 4 * hidden
    blocks = config["num_layers"] * (4 * hidden * hidden + 2 * hidden * intermediate)
    return (vocabulary + length) * hidden + blocks + length * length


def _backbone_elements(config):
    image = config["image_encoder"]["config"]
    text = config["text_encoder"]["config"]
    image_dim = image["embed_dim"] * 2 ** (len(image["depths"]) - 1)
    return (image_dim + text["hidden_dim"]) * config["projection_dim"]


def _check_coswin(config, where):
    depths, heads = config["depths"], config["num_heads"]
    if len(depths) != len(heads):
        raise _Invalid(f"{where}.num_heads", f"needs one entry per stage ({len(depths)}); found {len(heads)}")


def _check_text_encoder(config, where):
    vocabulary = config.get("vocabulary_size", 49408)
    eos = config.get("eos_token_id", 49407)
    if eos >= vocabulary:
        raise _Invalid(f"{where}.eos_token_id", f"must be below vocabulary_size={vocabulary}; found {eos}")


# registered name -> (argument validators, required arguments, cross-argument check, size in numbers).
CONFIG_SCHEMAS = {
    "florence_keras>CoSwinBackbone": (
        {
            "embed_dim": positive,
            "depths": list_of(integer(1, 1024), 1, 8),
            "num_heads": list_of(positive, 1, 8),
            "window_size": integer(1, 1024),
            "mlp_ratio": number(0.0, 64.0, low_open=True),
            "qkv_bias": boolean,
            "dropout": fraction,
            "attention_dropout": fraction,
            "drop_path_rate": fraction,
            "patch_embedding": one_of("conv", "linear"),
            "patch_size": integer(1, 1024),
            "image_shape": list_of(integer(1, MAX_IMAGE_SIDE), 3, 3),
            "layer_norm_epsilon": epsilon,
        },
        ("embed_dim", "depths", "num_heads", "window_size"),
        _check_coswin,
        _coswin_elements,
    ),
    "florence_keras>FlorenceTextEncoder": (
        {
            "vocabulary_size": integer(1, 2**24),
            "hidden_dim": positive,
            "num_layers": integer(1, 1024),
            "num_heads": positive,
            "intermediate_dim": optional(positive),
            "max_sequence_length": integer(1, MAX_SEQUENCE_LENGTH),
            "activation": one_of("quick_gelu", "gelu"),
            "layer_norm_epsilon": epsilon,
            "eos_token_id": integer(0, 2**24),
        },
        ("hidden_dim", "num_layers", "num_heads"),
        _check_text_encoder,
        _text_elements,
    ),
    "florence_keras>FlorenceBackbone": (
        {
            "image_encoder": keras_object("florence_keras>CoSwinBackbone", "florence_keras>VideoCoSwinBackbone"),
            "text_encoder": keras_object("florence_keras>FlorenceTextEncoder"),
            "projection_dim": positive,
            "logit_scale_init": number(0.0, 1e6, low_open=True),
            "logit_scale_max": number(0.0, 1e6, low_open=True),
        },
        ("image_encoder", "text_encoder", "projection_dim"),
        None,
        _backbone_elements,
    ),
    "florence_keras>FlorenceTokenizer": (
        {
            "config_file": one_of("tokenizer.json"),  # names the asset folder: nothing else may be read
            "sequence_length": optional(integer(1, MAX_SEQUENCE_LENGTH)),
            "add_prefix_space": boolean,
            "pad_with_end_token": boolean,
            "vocabulary": optional(_from_assets),
            "merges": optional(_from_assets),
        },
        (),
        None,
        None,
    ),
    "florence_keras>FlorenceImageConverter": (
        {
            "image_size": optional(list_of(integer(1, MAX_IMAGE_SIDE), 2, 2)),
            "mean": list_of(number(-1e6, 1e6), 3, 3),
            "std": list_of(number(0.0, 1e6, low_open=True), 3, 3),
            "interpolation": one_of(*INTERPOLATIONS),
            "antialias": boolean,
            "crop_to_aspect_ratio": boolean,
            "pad_to_aspect_ratio": boolean,
            "bounding_box_format": string,
            "data_format": optional(one_of("channels_last", "channels_first")),
        },
        (),
        None,
        None,
    ),
    "florence_keras>FlorenceCLIPPreprocessor": (
        {
            "tokenizer": keras_object("florence_keras>FlorenceTokenizer"),
            "image_converter": optional(keras_object("florence_keras>FlorenceImageConverter")),
            "sequence_length": integer(2, MAX_SEQUENCE_LENGTH),
            "config_file": one_of("preprocessor.json"),
        },
        ("tokenizer",),
        None,
        None,
    ),
    "florence_keras>FlorenceCLIP": (
        {
            "backbone": keras_object("florence_keras>FlorenceBackbone"),
            "preprocessor": optional(keras_object("florence_keras>FlorenceCLIPPreprocessor")),
        },
        ("backbone",),
        None,
        None,
    ),
    "florence_keras>FlorenceImageClassifier": (
        {
            "backbone": keras_object("florence_keras>FlorenceBackbone"),
            "preprocessor": optional(keras_object("florence_keras>FlorenceCLIPPreprocessor")),
            "class_names": list_of(string, 2, 2**20),
            "head": one_of("unicl", "linear"),
            "templates": list_of(string, 1, 2**16),
        },
        ("backbone", "class_names"),
        None,
        None,
    ),
}
# Keys every Keras layer / model config may hold.
_COMMON = {"name": string, "trainable": boolean, "dtype": dtype}
LAYER_KEYS = tuple(_COMMON)


def _resolve(value, where, allowed):
    """The registered class of a serialized object, checked against `allowed` registered names."""
    config_where = f"{where}.config" if where else "config"
    where = where or "the top-level object"
    if not isinstance(value, dict) or set(value) != OBJECT_KEYS:
        raise _Invalid(where, f"must be a serialized Keras object with keys {sorted(OBJECT_KEYS)}; "
                              f"found {value!r}"[:300])
    registered = value["registered_name"]
    cls = keras.saving.get_registered_object(registered) if isinstance(registered, str) else None
    if cls is None or not isinstance(cls, type) or not registered.startswith("florence_keras>"):
        raise _Invalid(where, f"names the class {value['class_name']!r} (module {value['module']!r}, registered_name "
                              f"{registered!r}), not a registered florence_keras class (nothing else is loaded from "
                              f"a preset)"[:400])
    if allowed:
        bases = [keras.saving.get_registered_object(name) for name in allowed]
        if not any(base is not None and issubclass(cls, base) for base in bases):
            raise _Invalid(where, f"names {registered!r}; expected {' or '.join(allowed)}")
    if value["module"] != cls.__module__ or value["class_name"] != cls.__name__:
        raise _Invalid(where, f"module/class_name {value['module']!r}/{value['class_name']!r} do not match "
                              f"{registered!r} ({cls.__module__}.{cls.__name__})"[:300])
    if not isinstance(value["config"], dict):
        raise _Invalid(config_where, f"must be an object; found {value['config']!r}"[:300])
    return cls


def _schema(cls):
    return CONFIG_SCHEMAS.get(keras.saving.get_registered_name(cls))


def validate_object(value, where="", allowed=()):
    """Checks one serialized object (and everything nested in it); returns the model size in numbers.

    Args:
        value: the parsed JSON value.
        where: its path inside the file, for messages.
        allowed: registered names of the classes accepted here (subclasses too); empty: any florence_keras class.

    Raises:
        _Invalid: (internal) caught by `validate_document`, which names the file.
    """
    cls = _resolve(value, where, allowed)
    config = value["config"]
    where = f"{where}.config" if where else "config"
    schema = _schema(cls)
    validators, required, cross_check, size = schema if schema else ({}, (), None, None)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs"}
    elements = 0
    for key, item in config.items():
        path = f"{where}.{key}"
        check = validators.get(key) or _COMMON.get(key)
        if check is None and not schema and isinstance(item, dict) and "class_name" in item:
            check = keras_object()  # a class without a schema: its nested objects are still checked
        if check is None and key not in accepted:
            raise _Invalid(path, f"is not an argument of {cls.__name__}")
        if check is not None:
            elements += check(item, path) or 0
    for key in required:
        if key not in config:
            raise _Invalid(f"{where}.{key}", f"is missing (required by {cls.__name__})")
    if cross_check is not None:
        cross_check(config, where)
    if size is not None:
        elements += size(config)
    if elements > MAX_MODEL_ELEMENTS:
        raise _Invalid(where, f"describes a model of about {elements:.3g} numbers, more than the "
                              f"{MAX_MODEL_ELEMENTS:.3g} a Florence preset may hold")
    return elements


def validate_document(path, document, allowed=()):
    """Checks a config file's serialized object; `PresetFileError` naming `path` and the place inside it."""
    try:
        return validate_object(document, "", allowed)
    except _Invalid as e:
        raise PresetFileError(path, f"{e.where} {e.message}.") from None

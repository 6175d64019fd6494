"""The config schema: wrong types, unknown keys, foreign classes and absurd sizes are named before anything is built."""

import copy
import inspect
import json

import keras
import pytest

from florence_keras.models import preset_schema
from florence_keras.models.preset_files import PresetFileError


@pytest.fixture(scope="module")
def task_document(tiny_clip, tmp_path_factory):
    directory = tmp_path_factory.mktemp("schema_preset")
    tiny_clip.save_to_preset(str(directory))
    return json.loads((directory / "task.json").read_text())


def _edited(document, path, value=None, delete=False):
    document = copy.deepcopy(document)
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return document


IMAGE = ("config", "backbone", "config", "image_encoder", "config")
TEXT = ("config", "backbone", "config", "text_encoder", "config")
TOKENIZER = ("config", "preprocessor", "config", "tokenizer", "config")
CONVERTER = ("config", "preprocessor", "config", "image_converter", "config")


@pytest.mark.parametrize("path, value, message", [
    (IMAGE + ("depths",), [{}, 2], r"image_encoder\.config\.depths\[0\] must be an int in \[1, 1024\]; found \{\}"),
    (IMAGE + ("embed_dim",), True, r"image_encoder\.config\.embed_dim must be an int .*found True"),
    (IMAGE + ("embed_dim",), 16.0, r"embed_dim must be an int .*found 16\.0"),
    (IMAGE + ("drop_path_rate",), 2.0, r"drop_path_rate must be a finite number in \[0\.0, 1\.0\]"),
    (IMAGE + ("patch_embedding",), "Lambda", r"patch_embedding must be one of \['conv', 'linear'\]"),
    (IMAGE + ("num_heads",), [1], r"image_encoder\.config\.num_heads needs one entry per stage \(2\); found 1"),
    (IMAGE + ("image_shape",), [32, 32], r"image_shape must be a list of 3 to 3 items"),
    (IMAGE + ("bogus",), 1, r"image_encoder\.config\.bogus is not an argument of CoSwinBackbone"),
    (IMAGE + ("dtype",), "float77", r"image_encoder\.config\.dtype is not a dtype policy Keras knows"),
    (TEXT + ("eos_token_id",), 49408, r"eos_token_id must be below vocabulary_size=49408"),
    (TEXT + ("activation",), "relu", r"activation must be one of"),
    (TOKENIZER + ("config_file",), "../../etc/passwd.json", r"tokenizer\.config\.config_file must be one of"),
    (TOKENIZER + ("vocabulary",), "/etc/passwd", r"tokenizer\.config\.vocabulary must not be set"),
    (CONVERTER + ("std",), [1.0, 0.0, 1.0], r"image_converter\.config\.std\[1\] must be a finite number in \(0\.0"),
    (("config", "backbone", "registered_name"), "florence_keras>CoSwinBackbone",
     r"config\.backbone names 'florence_keras>CoSwinBackbone'; expected florence_keras>FlorenceBackbone"),
    (("config", "backbone", "module"), "os", r"config\.backbone module/class_name 'os'/'FlorenceBackbone' do not match"),
    (("config", "backbone", "registered_name"), None, r"config\.backbone names the class 'FlorenceBackbone' .*"
                                                       r"not a registered florence_keras class"),
    (("config", "backbone"), [1, 2], r"config\.backbone must be a serialized Keras object"),
    (("config", "preprocessor", "config"), "x", r"config\.preprocessor\.config must be an object"),
])
def test_bad_values_are_named_with_their_place(task_document, path, value, message):
    with pytest.raises(PresetFileError, match=f"task.json': .*{message}"):
        preset_schema.validate_document("task.json", _edited(task_document, path, value))


def test_missing_required_arguments_are_named(task_document):
    with pytest.raises(PresetFileError, match=r"image_encoder\.config\.embed_dim is missing"):
        preset_schema.validate_document("task.json", _edited(task_document, IMAGE + ("embed_dim",), delete=True))
    # An optional argument may be absent: the constructor's default applies.
    preset_schema.validate_document("task.json", _edited(task_document, IMAGE + ("mlp_ratio",), delete=True))


@pytest.mark.parametrize("edits", [
    {IMAGE + ("embed_dim",): 2**20},
    {TEXT + ("num_layers",): 1024, TEXT + ("hidden_dim",): 4096},
    {TEXT + ("vocabulary_size",): 2**24, TEXT + ("hidden_dim",): 256},
    {IMAGE + ("window_size",): 1024, IMAGE + ("image_shape",): [8192, 8192, 3]},  # (w^2)^2 position indices
])
def test_configs_describing_absurd_models_are_refused(task_document, edits):
    document = task_document
    for path, value in edits.items():
        document = _edited(document, path, value)
    with pytest.raises(PresetFileError, match="describes a model of about .* numbers, more than"):
        preset_schema.validate_document("task.json", document)


def test_the_size_estimate_brackets_the_real_parameter_count(tiny_clip, task_document):
    estimate = preset_schema.validate_document("task.json", task_document)
    parameters = tiny_clip.backbone.count_params()
    # Weights plus the index tables and masks built with them; the masks of a tiny model are a few thousand numbers.
    assert parameters <= estimate <= 1.2 * parameters, (estimate, parameters)


def _schema_keys(cls):
    validators = preset_schema.CONFIG_SCHEMAS[keras.saving.get_registered_name(cls)][0]
    return set(validators) | set(preset_schema.LAYER_KEYS)


def test_every_saved_argument_is_covered_by_the_schema_or_the_constructor(tiny_clip):
    """Fails when a constructor argument is added without a schema entry: the loader would refuse its presets."""
    objects = [tiny_clip, tiny_clip.backbone, tiny_clip.backbone.image_encoder, tiny_clip.backbone.text_encoder,
               tiny_clip.preprocessor, tiny_clip.preprocessor.tokenizer, tiny_clip.preprocessor.image_converter]
    for instance in objects:
        cls = type(instance)
        saved = set(instance.get_config())
        accepted = set(inspect.signature(cls.__init__).parameters)
        assert saved <= _schema_keys(cls) | accepted, (cls.__name__, saved - _schema_keys(cls) - accepted)
        assert not saved - _schema_keys(cls), f"{cls.__name__}: no type check for {saved - _schema_keys(cls)}"

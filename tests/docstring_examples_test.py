"""The `Example:` blocks in docstrings run and print what they claim."""

import doctest
import importlib

import pytest

MODULES = [
    "florence_keras.layers.window_attention",
    "florence_keras.layers.swin_transformer_block",
    "florence_keras.layers.conv_token_embedding",
    "florence_keras.layers.patch_merging",
    "florence_keras.layers.drop_path",
    "florence_keras.models.coswin_backbone",
    "florence_keras.models.florence_text_encoder",
    "florence_keras.models.florence_backbone",
    "florence_keras.models.florence_tokenizer",
    "florence_keras.models.florence_image_converter",
    "florence_keras.models.florence_clip_preprocessor",
    "florence_keras.data.labels",
    "florence_keras.data.skip_counter",
    "florence_keras.data.image_decoding",
    "florence_keras.data.image_transforms",
    "florence_keras.data.file_patterns",
    "florence_keras.data.data_format_error",
    "florence_keras.data.tfrecord_example",
    "florence_keras.data.scene_generator",
    "florence_keras.data.image_records",
    "florence_keras.data.image_text_dataset",
    "florence_keras.data.builtin_dataset",
    "florence_keras.data.regular_files",
    "florence_keras.data.tfrecord_framing",
    "florence_keras.startup_logging",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no docstring example"
    assert result.failed == 0

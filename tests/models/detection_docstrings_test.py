"""The `Example:` blocks of the detection modules run and print what they claim."""

import doctest
import importlib

import pytest

MODULES = ["florence_keras.layers.detection_fpn", "florence_keras.layers.atss_head",
           "florence_keras.models.detection_anchors", "florence_keras.models.florence_detector"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0

"""Runs the `Example:` sections of the export modules' docstrings."""

import doctest
import importlib

import numpy as np
import pytest
import tensorflow as tf

MODULES = ["export_signature", "rest_examples", "serving_ops", "warmup_requests"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"florence_keras.export.{name}")
    result = doctest.testmod(module, extraglobs={"np": np, "tf": tf}, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0

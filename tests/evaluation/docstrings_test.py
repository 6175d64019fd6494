"""Runs the `Example:` sections of the evaluation modules' docstrings."""

import doctest
import importlib

import numpy as np
import pytest

MODULES = ["features", "few_shot", "linear_probe", "metrics", "reporting", "retrieval", "zero_shot"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"florence_keras.evaluation.{name}")
    result = doctest.testmod(module, extraglobs={"np": np}, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0

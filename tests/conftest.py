"""Shared pytest fixtures."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_clip():
    """A tiny FlorenceCLIP (32x32 images, real CLIP tokenizer), built once."""
    from tests.model_fixtures import tiny_clip as build

    return build(image_size=32)


@pytest.fixture(scope="session")
def tiny_preset_dir(tmp_path_factory):
    """A directory holding a tiny random FlorenceCLIP preset (32x32 images), written once per session.

    The recipe tests pass it as `--preset=DIR`: the recipes' own preset-loading path, in seconds.
    """
    from tests.model_fixtures import save_tiny_preset

    return save_tiny_preset(tmp_path_factory.mktemp("tiny_preset") / "preset", image_size=32)

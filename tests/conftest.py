"""Shared pytest fixtures."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_clip():
    """A tiny FlorenceCLIP (32x32 images, real CLIP tokenizer), built once."""
    from florence_keras.models import presets
    from florence_keras.models.florence_clip import FlorenceCLIP
    from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
    from florence_keras.models.florence_image_converter import FlorenceImageConverter
    from florence_keras.models.florence_tokenizer import FlorenceTokenizer

    return FlorenceCLIP(
        presets.tiny_test_backbone(image_size=32),
        FlorenceCLIPPreprocessor(FlorenceTokenizer(), FlorenceImageConverter((32, 32))),
    )

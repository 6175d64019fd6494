"""Tiny Florence models for the tests: configs, backbones, a `FlorenceCLIP` and a preset directory.

These used to live in the library (`models/presets.tiny_test_*`, `evaluation/encoded_data.tiny_test_preset`);
they are test data, so they live with the tests. The recipes have no tiny mode of their own: a recipe test saves
`save_tiny_preset(directory)` and passes `--preset=directory`, so the recipe runs its real preset-loading path.
"""

import os

from florence_keras.models import presets

# Side of the tiny model's square images.
TINY_IMAGE_SIZE = 32


def tiny_test_config(image_size=TINY_IMAGE_SIZE, patch_embedding="conv"):
    """A few-thousand-weight Florence (the real CLIP vocabulary), as `presets.build_backbone` kwargs."""
    return {
        "image_encoder": {"embed_dim": 16, "depths": [1, 2], "num_heads": [1, 2],
                          "window_size": 2, "drop_path_rate": 0.0,
                          "patch_embedding": patch_embedding,
                          "image_shape": (image_size, image_size, 3)},
        "text_encoder": {"hidden_dim": 32, "num_layers": 2, "num_heads": 2,
                         "vocabulary_size": presets.CLIP_VOCABULARY_SIZE,
                         "max_sequence_length": presets.CONTEXT_LENGTH},
        "projection_dim": 16,
    }


def tiny_test_backbone(image_size=TINY_IMAGE_SIZE, dtype=None):
    """`presets.build_backbone(tiny_test_config(image_size))`."""
    return presets.build_backbone(tiny_test_config(image_size), dtype=dtype)


def tiny_clip(image_size=TINY_IMAGE_SIZE):
    """A randomly initialised tiny `FlorenceCLIP` with the packaged CLIP tokenizer."""
    from florence_keras.models.florence_clip import FlorenceCLIP
    from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
    from florence_keras.models.florence_image_converter import FlorenceImageConverter
    from florence_keras.models.florence_tokenizer import FlorenceTokenizer

    return FlorenceCLIP(
        tiny_test_backbone(image_size=image_size),
        FlorenceCLIPPreprocessor(FlorenceTokenizer(), FlorenceImageConverter((image_size, image_size))),
    )


def save_tiny_preset(directory, image_size=TINY_IMAGE_SIZE, seed=0):
    """Saves a tiny random `FlorenceCLIP` as a preset in `directory` (once) and returns the path as a str.

    The weights are random (seeded), so the scores a recipe computes from it mean nothing; the recipe tests use
    it to run the real load -> read -> encode -> cache -> report path in seconds.
    """
    import keras

    directory = os.fspath(directory)
    if not os.path.exists(os.path.join(directory, "config.json")):
        keras.utils.set_random_seed(seed)
        tiny_clip(image_size).save_to_preset(directory)
    return directory

"""Tiny Florence models for the tests: configs, backbones, a `FlorenceCLIP`, a preset directory, synthetic trainer data.

These used to live in the library (`models/presets.tiny_test_*`, `evaluation/encoded_data.tiny_test_preset`);
they are test data, so they live with the tests. The recipes have no tiny mode of their own: a recipe test saves
`save_tiny_preset(directory)` and passes `--preset=directory`, so the recipe runs its real preset-loading path.
"""

import functools
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


def tiny_clip(image_size=TINY_IMAGE_SIZE, drop_path_rate=0.0, dtype=None):
    """A randomly initialised tiny `FlorenceCLIP` with the packaged CLIP tokenizer.

    Args:
        image_size: side of the square images the functional model is built for.
        drop_path_rate: the image encoder's stochastic depth rate (of its last block; 0 disables DropPath).
        dtype: None (the global policy), or a dtype / policy for every layer, e.g. "float64".
    """
    from florence_keras.models.florence_clip import FlorenceCLIP
    from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
    from florence_keras.models.florence_image_converter import FlorenceImageConverter
    from florence_keras.models.florence_tokenizer import FlorenceTokenizer

    config = tiny_test_config(image_size)
    config["image_encoder"]["drop_path_rate"] = drop_path_rate
    return FlorenceCLIP(
        presets.build_backbone(config, dtype=dtype),
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


# The captions of `synthetic_image_text_input_fn`: one per label (colour × shape), plain and prompt-augmented.
_COLOURS = ("red", "green", "blue", "yellow")
_SHAPES = ("circle", "square", "star")
_COLOUR_MEANS = {"red": (1.0, -0.5, -0.5), "green": (-0.5, 1.0, -0.5), "blue": (-0.5, -0.5, 1.0),
                 "yellow": (0.8, 0.8, -1.0)}


@functools.lru_cache(maxsize=None)
def _caption_token_ids(augmented):
    """int32 [12, 77] CLIP token ids of the captions (a pure function of `augmented`, cached: tokenising costs ~1 s)."""
    from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
    from florence_keras.models.florence_tokenizer import FlorenceTokenizer

    template = "a photo of a {} {}." if augmented else "a {} {}"
    captions = [template.format(colour, shape) for colour in _COLOURS for shape in _SHAPES]
    return FlorenceCLIPPreprocessor(FlorenceTokenizer()).tokenize(captions).numpy()


def synthetic_image_text_input_fn(num_examples=64, base_image_size=16, seed=0):
    """A deterministic `make_dataset(request)` for `UniCLTrainer`, over a fixed pool of synthetic examples.

    Example i has a random label in [0, 12) (labels repeat, so UniCL positives occur within a batch), a caption
    naming the label's colour and shape ("a red circle") tokenised by the CLIP tokenizer to 77 int32 ids, and a
    `base_image_size` square float32 image: normalised noise shifted towards the label's colour. The function follows
    the trainer's data contract (`DatasetRequest`): endless per-replica batches `{"images", "token_ids", "labels"}`.
    Global batch t is examples [t·G, (t+1)·G) mod the pool (G = global batch size) and replica r of that step gets
    the slice [r·b, (r+1)·b); pipeline p yields, step by step, the batches of its local replicas in order, exactly
    what `distribute_datasets_from_function` hands out, so the global batch of each step does not depend on the
    number of replicas or workers. The stage's image size resizes the images; with prompt-augmented texts the
    captions read "a photo of a red circle." (other token ids, same labels). Not positioned: a resumed trainer
    skips the consumed batches.

    Args:
        num_examples: int, size of the pool.
        base_image_size: int, side of the stored images.
        seed: int, the NumPy seed of the pool.

    Returns:
        A callable `DatasetRequest -> tf.data.Dataset`.
    """
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    num_labels = len(_COLOURS) * len(_SHAPES)
    labels = rng.integers(0, num_labels, size=num_examples).astype("int64")
    means = np.array([_COLOUR_MEANS[colour] for colour in _COLOURS for _ in _SHAPES], "float32")
    images = (rng.normal(scale=0.5, size=(num_examples, base_image_size, base_image_size, 3)).astype("float32")
              + means[labels][:, None, None, :])
    token_ids = {augmented: _caption_token_ids(augmented)[labels] for augmented in (False, True)}

    def make_dataset(request):
        b = request.batch_size
        local_replicas = request.global_batch_size // b // request.num_input_pipelines
        first_replica = request.input_pipeline_id * local_replicas
        size = request.stage.image_size
        tokens = token_ids[request.stage.prompt_augmented_texts]

        def batch_at(index):
            step = index // local_replicas
            replica = first_replica + index % local_replicas
            start = step * request.global_batch_size + replica * b
            rows = tf.math.floormod(start + tf.range(b, dtype=tf.int64), num_examples)
            batch_images = tf.gather(images, rows)
            if size != base_image_size:
                batch_images = tf.image.resize(batch_images, (size, size))
            return {"images": batch_images, "token_ids": tf.gather(tokens, rows), "labels": tf.gather(labels, rows)}

        return tf.data.Dataset.range(2**62).map(batch_at)

    return make_dataset

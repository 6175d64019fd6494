"""florence_mini training runs for the trainer's guarantee tests: the real model on the real input pipeline.

The model is the `florence_mini` architecture preset (CoSwin with its fused LayerNorm / GELU gradients and DropPath,
the CLIP-style text tower) at 32 pixels; the data is a few built-in scenes written to disk as CSV or TFRecord files
and read by `make_image_text_input_fn`, the pretraining recipe's input pipeline (decode, random-resized-crop and
flip, prompt-augmented texts, tokenisation, per-replica batches, positioned streams).
"""

import os

import numpy as np

from florence_keras.data.builtin_dataset import write_builtin_dataset
from florence_keras.models import preset_registry
from florence_keras.models.florence_clip import FlorenceCLIP
from florence_keras.training import AdamWConfig
from florence_keras.training import UniCLTrainer
from florence_keras.training.image_text_input import make_image_text_input_fn

IMAGE_SIZE = 32
DROP_PATH_RATE = 0.1
NUM_RECORDS = 24


def write_data(directory, data_format="csv", num_records=NUM_RECORDS):
    """Writes `num_records` built-in scenes (once) under `directory`; returns the training path(s) of `data_format`."""
    directory = os.fspath(directory)
    paths = write_builtin_dataset(directory, num_train=num_records, num_heldout=0, formats=(data_format,),
                                  image_size=IMAGE_SIZE, seed=0)
    return paths[data_format]["train"]


def build_task(drop_path_rate=DROP_PATH_RATE, dtype=None):
    """A randomly initialised florence_mini `FlorenceCLIP` at `IMAGE_SIZE` pixels."""
    return FlorenceCLIP.from_preset("florence_mini", image_size=IMAGE_SIZE, dtype=dtype,
                                    image_encoder={"drop_path_rate": drop_path_rate})


def make_input_fn(train_data, data_format="csv", skip_counter=None):
    """The pretraining recipe's `make_dataset(request)` over `train_data`."""
    preprocessor = preset_registry.build_architecture_preprocessor("florence_mini", IMAGE_SIZE)
    return make_image_text_input_fn(train_data, data_format, preprocessor, skip_counter=skip_counter)


def make_trainer(model_dir, make_dataset, drop_path_rate=DROP_PATH_RATE, **overrides):
    """A `UniCLTrainer` of florence_mini; keyword arguments override the small defaults below."""
    kwargs = dict(model_dir=os.fspath(model_dir), total_steps=4, global_batch_size=8,
                  optimizer=AdamWConfig(learning_rate=1e-3, warmup_steps=1), image_size=IMAGE_SIZE,
                  checkpoint_every=2, log_every=1, seed=3, verbose=0)
    kwargs.update(overrides)
    return UniCLTrainer(lambda: build_task(drop_path_rate), make_dataset, **kwargs)


def weights(model):
    """Every variable of `model` (weights, optimizer-free state such as DropPath seeds), keyed by position."""
    return {str(index): np.asarray(variable.numpy()) for index, variable in enumerate(model.variables)}


def max_abs_diff(expected, got):
    """Largest |difference| over dicts (or lists) of arrays with the same keys and shapes."""
    if isinstance(expected, dict):
        assert sorted(expected) == sorted(got), (sorted(expected), sorted(got))
        pairs = [(expected[key], got[key]) for key in expected]
    else:
        assert len(expected) == len(got)
        pairs = list(zip(expected, got))
    return max((float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if np.size(a) else 0.0)
               for a, b in pairs)

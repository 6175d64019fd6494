"""Fixtures of the data tests: one small built-in dataset in every format, written once per session."""

import pytest

from florence_keras.data.builtin_dataset import FORMATS
from florence_keras.data.builtin_dataset import write_builtin_dataset

BUILTIN_SETTINGS = {"num_train": 40, "num_heldout": 12, "image_size": 48, "seed": 3, "num_shards": 4}


@pytest.fixture(scope="session")
def builtin(tmp_path_factory):
    """The paths dict of a built-in dataset (every format, clips included)."""
    out_dir = tmp_path_factory.mktemp("builtin")
    return write_builtin_dataset(out_dir, formats=FORMATS, num_clips=3, clip_frames=6, **BUILTIN_SETTINGS)

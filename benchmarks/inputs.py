"""Inputs shared by both sides of a comparison (numpy only: no framework import)."""

import numpy as np


def swin_inputs(batch, image_size, seed=0):
    """Random images `(batch, size, size, 3)` float32, NHWC (torch transposes them to NCHW)."""
    return np.random.RandomState(seed).randn(batch, image_size, image_size, 3).astype("float32")


def text_inputs(batch, length, eos_token_id, seed=0):
    """Random token ids `(batch, length)` int32 below the end token, with the end token last."""
    ids = np.random.RandomState(seed).randint(1, eos_token_id, size=(batch, length))
    ids[:, -1] = eos_token_id
    return ids.astype("int32")

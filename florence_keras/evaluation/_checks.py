"""Argument checks and array conversion shared by the evaluation modules (private)."""

import numpy as np


def to_numpy(x):
    """Converts a tensor (any Keras backend), array or nested list to a numpy array."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple, int, float, np.generic)):
        return np.asarray(x)
    if hasattr(x, "numpy") and callable(x.numpy):  # tf / torch eager tensors
        return np.asarray(x.numpy())
    try:
        import keras  # Imported lazily: the metric modules need only numpy.

        return np.asarray(keras.ops.convert_to_numpy(x))
    except (ImportError, TypeError, ValueError):
        return np.asarray(x)


def as_matrix(x, name, allow_empty=False):
    """Returns `x` as a finite float 2-D numpy array, or raises a ValueError naming `name`."""
    x = to_numpy(x)
    if x.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D array. Received: {name}.shape={x.shape}")
    if not allow_empty and x.shape[0] == 0:
        raise ValueError(f"`{name}` must have at least one row. Received: {name}.shape={x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"`{name}` must be real-valued. Received: {name}.dtype={x.dtype}")
    if np.issubdtype(x.dtype, np.floating) and np.isnan(x).any():
        raise ValueError(
            f"`{name}` contains {int(np.isnan(x).sum())} NaN values; NaN scores cannot be ranked."
        )
    return x


def as_index_vector(x, name, size=None, upper=None):
    """Returns `x` as a 1-D int64 array, checked against `size` and range [0, upper)."""
    x = to_numpy(x)
    if x.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array. Received: {name}.shape={x.shape}")
    if x.size and not np.issubdtype(x.dtype, np.integer):
        if np.issubdtype(x.dtype, np.floating) and np.all(np.equal(np.mod(x, 1), 0)):
            x = x.astype(np.int64)
        else:
            raise ValueError(f"`{name}` must hold integers. Received: {name}.dtype={x.dtype}")
    x = x.astype(np.int64, copy=False)
    if size is not None and x.shape[0] != size:
        raise ValueError(
            f"`{name}` must have {size} entries (one per row). Received: {name}.shape={x.shape}"
        )
    if upper is not None and x.size and (x.min() < 0 or x.max() >= upper):
        bad = x[(x < 0) | (x >= upper)][0]
        raise ValueError(f"`{name}` values must lie in [0, {upper}). Received: {name} value {bad}")
    return x


def check_ks(ks, name="ks"):
    """Returns `ks` as a tuple of positive ints (sorted, unique)."""
    if isinstance(ks, (int, np.integer)):
        ks = (ks,)
    ks = tuple(ks)
    if not ks or any(not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1 for k in ks):
        raise ValueError(f"`{name}` must be positive integers. Received: {name}={ks}")
    return tuple(sorted(set(int(k) for k in ks)))


def check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def l2_normalize(x, axis=-1, epsilon=1e-12):
    """L2-normalises float64 copies of `x` along `axis` (zero vectors stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.sqrt(np.sum(x * x, axis=axis, keepdims=True))
    return x / np.maximum(norm, epsilon)

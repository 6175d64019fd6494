"""Which rows of the global batch the layers are running on: per-example randomness independent of the split.

A training step may see only part of the global batch: one replica's share (MirroredStrategy, multi-worker) or one
gradient-cache chunk of it. Per-example random draws (DropPath's masks) made on the part alone would depend on how
the batch was split: two replicas would draw the same masks for their different examples, and a chunk would draw
other masks than the whole batch. Inside `example_window(offset, global_batch_size)` a layer instead draws for the
whole global batch and keeps rows `[offset, offset + rows)`, so example `offset + i`'s mask is the same on one device,
on N replicas and chunk by chunk (tests/training/florence_mini_guarantees_test.py). Outside any window a call draws
for its own rows only (rows == global batch).

The window is read when a layer's call is traced (a Python context, like a name scope); `offset` may be a tensor
(a replica id or a chunk index inside a loop).

Example:
>>> with example_window(4, 8):
...     current_example_window()
(4, 8)
>>> current_example_window() is None
True
"""

import contextlib
import threading

import keras
from keras import ops

_windows = threading.local()


@contextlib.contextmanager
def example_window(offset, global_batch_size):
    """Layers called inside see rows `[offset, offset + their batch)` of a global batch of `global_batch_size`.

    Args:
        offset: int or scalar integer tensor, the first row of this call's batch in the global batch.
        global_batch_size: int > 0, the rows that random draws are made for.
    """
    if not isinstance(global_batch_size, int) or global_batch_size <= 0:
        raise ValueError(f"`global_batch_size` must be a positive int. Received: {global_batch_size!r}")
    if isinstance(offset, int) and not 0 <= offset < global_batch_size:
        raise ValueError(f"`offset` must be in [0, {global_batch_size}). Received: offset={offset}")
    stack = _stack()
    stack.append((offset, global_batch_size))
    try:
        yield
    finally:
        stack.pop()


def per_example_uniform(rows, seed_generator, dtype="float32"):
    """One uniform draw in [0, 1) per example, shape `(rows,)`: rows `[offset, offset + rows)` of a draw for the
    whole global batch inside an `example_window`, a draw for `rows` alone outside any (DropPath's masks,
    `SummaryTokenDropout`'s).

    Args:
        rows: int or scalar tensor, this call's batch size.
        seed_generator: the calling layer's `keras.random.SeedGenerator`.
        dtype: the draw's dtype. Defaults to "float32".
    """
    window = current_example_window()
    if window is None:
        return keras.random.uniform((rows,), seed=seed_generator, dtype=dtype)
    offset, global_batch_size = window
    noise = keras.random.uniform((global_batch_size,), seed=seed_generator, dtype=dtype)
    return ops.slice(noise, (offset,), (rows,))


def current_example_window():
    """`(offset, global_batch_size)` of the innermost `example_window`, or None outside any."""
    stack = _stack()
    return stack[-1] if stack else None


def _stack():
    if not hasattr(_windows, "stack"):
        _windows.stack = []
    return _windows.stack

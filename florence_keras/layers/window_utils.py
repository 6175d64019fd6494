"""Window helpers shared by 2-D (image) and 3-D (video) window attention.

Every function here works for any number of spatial axes: a feature map is laid out
channels-last as `(batch, *spatial, channels)` with `len(spatial)` equal to 2
(`height, width`) or 3 (`time, height, width`). The static helpers (`numpy`) build
constants once at layer build time; the tensor helpers use `keras.ops` only.
"""

import itertools

import numpy as np
from keras import ops


def effective_window_and_shift(spatial_shape, window_size, shift_size):
    """Swin's rule for feature maps no larger than the window.

    When the smallest spatial extent is not larger than the window, the window
    shrinks to that extent on every axis and the shift is disabled (Swin,
    `SwinTransformerBlock.__init__`; transformers' `set_shift_and_window_size`).
    For 3-D maps the rule is applied per axis, as Video Swin does.

    Args:
        spatial_shape: tuple of ints, the static spatial extent.
        window_size: tuple of ints, one per spatial axis.
        shift_size: tuple of ints, one per spatial axis.

    Returns:
        `(window_size, shift_size)` tuples actually used.
    """
    if len(spatial_shape) == 2:
        smallest = min(spatial_shape)
        if smallest <= max(window_size):
            return (smallest,) * 2, (0, 0)
        return tuple(window_size), tuple(shift_size)
    window, shift = [], []
    for extent, w, s in zip(spatial_shape, window_size, shift_size):
        if extent <= w:
            window.append(extent)
            shift.append(0)
        else:
            window.append(w)
            shift.append(s)
    return tuple(window), tuple(shift)


def padded_shape(spatial_shape, window_size):
    """Spatial shape after zero-padding each axis up to a multiple of the window."""
    return tuple(-(-extent // w) * w for extent, w in zip(spatial_shape, window_size))


def relative_position_index(window_size, table_window_size=None):
    """Index into a relative-position bias table for a window of any rank.

    The table of a `table_window_size` window (default: `window_size`) has
    `prod(2 * w - 1)` rows; entry `[i, j]` of the returned `(N, N)` array
    (`N = prod(window_size)`) is the row holding the bias of token `j` seen from
    token `i`. A window that shrank (see `effective_window_and_shift`) reads its
    offsets from the full-size table, so weights stay independent of input size.
    """
    table_window_size = tuple(table_window_size or window_size)
    coords = np.stack(
        np.meshgrid(*[np.arange(w) for w in window_size], indexing="ij")
    ).reshape(len(window_size), -1)
    relative = coords[:, :, None] - coords[:, None, :]  # (rank, N, N)
    index = np.zeros(relative.shape[1:], dtype=np.int64)
    for axis, w in enumerate(table_window_size):
        stride = int(np.prod([2 * v - 1 for v in table_window_size[axis + 1 :]]))
        index += (relative[axis] + w - 1) * stride
    return index.astype("int32")


def shifted_window_mask(spatial_shape, window_size, shift_size, large_negative=-100.0):
    """Attention mask of cyclically shifted windows (Swin's `attn_mask`).

    Tokens that came from different regions of the un-shifted map must not
    attend to each other after the cyclic roll. Region ids are assigned over the
    (padded) map exactly as Swin does: per axis the slices
    `[0, -w)`, `[-w, -s)`, `[-s, end)`.

    Args:
        spatial_shape: padded spatial shape (a multiple of the window per axis).
        window_size: tuple of ints.
        shift_size: tuple of ints; a zero on every axis returns None.
        large_negative: value added to masked logits (Swin uses -100).

    Returns:
        float32 numpy array `(num_windows, N, N)` or None.
    """
    if not any(shift_size):
        return None
    region = np.zeros(spatial_shape, dtype=np.int64)
    slices_per_axis = []
    for w, s in zip(window_size, shift_size):
        if s:
            slices_per_axis.append((slice(0, -w), slice(-w, -s), slice(-s, None)))
        else:
            slices_per_axis.append((slice(None),))
    for count, slices in enumerate(itertools.product(*slices_per_axis)):
        region[slices] = count
    windows = numpy_window_partition(region[None, ..., None], window_size)
    windows = windows.reshape(windows.shape[0], -1)
    mask = windows[:, None, :] != windows[:, :, None]
    return np.where(mask, large_negative, 0.0).astype("float32")


def numpy_window_partition(x, window_size):
    """`window_partition` for numpy arrays (used to build constant masks)."""
    batch, spatial, channels = x.shape[0], x.shape[1:-1], x.shape[-1]
    rank = len(spatial)
    shape = [batch]
    for extent, w in zip(spatial, window_size):
        shape += [extent // w, w]
    x = x.reshape(shape + [channels])
    perm = [0] + [1 + 2 * i for i in range(rank)] + [2 + 2 * i for i in range(rank)]
    perm += [1 + 2 * rank]
    x = x.transpose(perm)
    return x.reshape([-1, int(np.prod(window_size)), channels])


def window_partition(x, spatial_shape, window_size):
    """Split a `(B, *spatial, C)` map into `(B * num_windows, N, C)` windows.

    `spatial_shape` must be static and divisible by `window_size` per axis.
    """
    rank = len(spatial_shape)
    channels = x.shape[-1]
    shape = [-1]
    for extent, w in zip(spatial_shape, window_size):
        shape += [extent // w, w]
    x = ops.reshape(x, shape + [channels])
    perm = [0] + [1 + 2 * i for i in range(rank)] + [2 + 2 * i for i in range(rank)]
    perm += [1 + 2 * rank]
    x = ops.transpose(x, perm)
    return ops.reshape(x, (-1, int(np.prod(window_size)), channels))


def window_reverse(windows, spatial_shape, window_size):
    """Inverse of `window_partition`: `(B * nW, N, C)` back to `(B, *spatial, C)`."""
    rank = len(spatial_shape)
    channels = windows.shape[-1]
    grid = [extent // w for extent, w in zip(spatial_shape, window_size)]
    x = ops.reshape(windows, [-1] + grid + list(window_size) + [channels])
    perm = [0]
    for i in range(rank):
        perm += [1 + i, 1 + rank + i]
    perm += [1 + 2 * rank]
    x = ops.transpose(x, perm)
    return ops.reshape(x, [-1] + list(spatial_shape) + [channels])


def pad_to_window(x, spatial_shape, window_size):
    """Zero-pad the end of each spatial axis up to a multiple of the window."""
    target = padded_shape(spatial_shape, window_size)
    pads = [(0, t - e) for e, t in zip(spatial_shape, target)]
    if not any(p[1] for p in pads):
        return x
    return ops.pad(x, [(0, 0)] + pads + [(0, 0)])

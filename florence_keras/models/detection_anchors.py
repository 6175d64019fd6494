"""One anchor per location of each pyramid level (ATSS): a square of `scale × stride` centred on the cell."""

import numpy as np


def level_anchors(map_sizes, strides, scale=8.0):
    """ATSS anchors for a pyramid.

    Args:
        map_sizes: list of `(height, width)` per level, finest first.
        strides: list of int, each level's stride in input pixels.
        scale: float, the anchor side in strides. Defaults to 8.

    Returns:
        `(anchors, level_sizes)`: float32 `(N, 4)` `xyxy` anchors in input pixels, level by level, row-major
        within a level (the order `ATSSHead` flattens its maps in), centred at `((j + 0.5)·s, (i + 0.5)·s)`;
        and the number of anchors per level.

    Example:
    >>> anchors, sizes = level_anchors([(2, 2), (1, 1)], [8, 16], scale=1.0)
    >>> anchors[:2].tolist(), sizes
    ([[0.0, 0.0, 8.0, 8.0], [8.0, 0.0, 16.0, 8.0]], [4, 1])
    """
    if len(map_sizes) != len(strides):
        raise ValueError(f"One stride per level. Received {len(map_sizes)} map sizes and {len(strides)} strides.")
    if scale <= 0:
        raise ValueError(f"`scale` must be positive. Received: scale={scale!r}")
    pieces, level_sizes = [], []
    for (height, width), stride in zip(map_sizes, strides):
        ys, xs = np.meshgrid((np.arange(height) + 0.5) * stride, (np.arange(width) + 0.5) * stride, indexing="ij")
        half = 0.5 * scale * stride
        centres = np.stack([xs.ravel(), ys.ravel()], axis=-1)
        pieces.append(np.concatenate([centres - half, centres + half], axis=-1))
        level_sizes.append(int(height * width))
    return np.concatenate(pieces, axis=0).astype(np.float32), level_sizes

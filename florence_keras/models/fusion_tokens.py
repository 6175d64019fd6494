"""The inputs of a METER fusion stack, shared by `FlorenceVQA` and `FlorenceFusionPretrainer`: CoSwin image tokens
and the text padding mask.

This module imports no Task, so either Task can import it at module level (the pretrainer must not import
`florence_vqa`, nor the other way round).
"""

from keras import ops


def check_image_token_stage(image_token_stage, num_stages):
    """Raises a ValueError unless `image_token_stage` is None or a stage index in `0..num_stages - 1`."""
    if image_token_stage is not None and (not isinstance(image_token_stage, int) or isinstance(image_token_stage, bool)
                                          or not 0 <= image_token_stage < num_stages):
        raise ValueError(f"`image_token_stage` must be None or an int in 0..{num_stages - 1}. Received: "
                         f"image_token_stage={image_token_stage!r}")


def check_image_scales(image_scales):
    """`image_scales` as a tuple of distinct positive ints (the resize factors of `FlorenceVQA`'s image tokens);
    raises a ValueError otherwise."""
    scales = tuple(image_scales) if isinstance(image_scales, (list, tuple)) else None
    if (not scales or len(set(scales)) != len(scales)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in scales)):
        raise ValueError(f"`image_scales` must be a non-empty list of distinct positive ints (resize factors, e.g. "
                         f"[1, 2]). Received: image_scales={image_scales!r}")
    return scales


def multi_scale_map(maps):
    """Several `(B, h_s, w_s, C)` maps -> `(B, Σ h_s·w_s, C)`: each flattened row-major, in order.

    Example:
    >>> import numpy as np
    >>> small, large = np.zeros((1, 1, 1, 2), "float32"), np.ones((1, 2, 2, 2), "float32")
    >>> tuple(multi_scale_map([small, large]).shape)
    (1, 5, 2)
    """
    return ops.concatenate([grid_cells(m) for m in maps], axis=1)


def grid_cells(image_map):
    """A map `(B, h, w, C)` -> its cells `(B, h·w, C)` row-major; cells `(B, N, C)` are returned as they are."""
    if len(image_map.shape) == 3:
        return image_map
    height, width, channels = image_map.shape[1], image_map.shape[2], image_map.shape[3]
    return ops.reshape(image_map, (-1, height * width, channels))


def image_map(features, image_token_stage=None, image_detail=False):
    """The map `(B, h, w, C)` the image tokens come from: the last stage after the encoder's final norm
    (`features["feature_map"]`, stage None) or stage `k`'s raw output `features["pyramid"]["P{k+2}"]`.

    With `image_detail`, each cell also carries the 2×2 cells of the stage before under it (that stage's raw
    output, space-to-depth): `(B, h, w, C + 4·C')`, the map's own channels first (`fold_cells`)."""
    chosen = features["feature_map"] if image_token_stage is None else \
        features["pyramid"][f"P{image_token_stage + 2}"]
    if not image_detail:
        return chosen
    level = len(features["pyramid"]) + 1 if image_token_stage is None else image_token_stage + 2  # P5: 4 stages
    if level - 1 < 2:
        raise ValueError("`image_detail` needs a stage before the image token stage (stage 0 has none).")
    return ops.concatenate([chosen, fold_cells(features["pyramid"][f"P{level - 1}"])], axis=-1)


def fold_cells(feature_map):
    """Space-to-depth by 2: `(B, 2h, 2w, C)` -> `(B, h, w, 4·C)`, each cell's channels the 2×2 cells under it in
    row-major order (top-left, top-right, bottom-left, bottom-right).

    Example:
    >>> import numpy as np
    >>> np.asarray(fold_cells(np.arange(4, dtype="float32").reshape(1, 2, 2, 1))).tolist()
    [[[[0.0, 1.0, 2.0, 3.0]]]]
    """
    height, width, channels = feature_map.shape[1] // 2, feature_map.shape[2] // 2, feature_map.shape[3]
    cells = ops.reshape(feature_map, (-1, height, 2, width, 2, channels))
    cells = ops.transpose(cells, (0, 1, 3, 2, 4, 5))
    return ops.reshape(cells, (-1, height, width, 4 * channels))


def grid_tokens(feature_map):
    """`(B, h, w, C)` -> `(B, 1 + h·w, C)`: the map's mean first (the image stream's pooled token, as METER does
    with Swin), then its `h·w` cells in row-major order. Cells `(B, N, C)` (`grid_cells`, `multi_scale_map`) give
    `(B, 1 + N, C)` the same way.

    Example:
    >>> import numpy as np
    >>> grid = np.arange(8, dtype="float32").reshape(1, 2, 2, 2)
    >>> np.asarray(grid_tokens(grid)).tolist()
    [[[3.0, 4.0], [0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]]]
    """
    grid = grid_cells(feature_map)
    return ops.concatenate([ops.mean(grid, axis=1, keepdims=True), grid], axis=1)


def image_tokens(features, image_token_stage=None, image_token_norm=None):
    """Image tokens `(B, 1 + h·w, C)` from a CoSwin's `forward_features` output: `grid_tokens` of `image_map`
    (through `image_token_norm` when a stage is chosen).

    Args:
        features: the dict of `CoSwinBackbone.forward_features` (`feature_map`, `pyramid`).
        image_token_stage: None (the last stage after the encoder's final norm, `feature_map`) or a stage index `k`:
            the map `pyramid["P{k+2}"]` through `image_token_norm`.
        image_token_norm: the LayerNorm of stage `image_token_stage` (unused when it is None).

    Example:
    >>> import numpy as np
    >>> grid = np.arange(8, dtype="float32").reshape(1, 2, 2, 2)
    >>> np.asarray(image_tokens({"feature_map": grid})).tolist()
    [[[3.0, 4.0], [0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]]]
    """
    feature_map = image_map(features, image_token_stage)
    if image_token_stage is not None:
        feature_map = image_token_norm(feature_map)
    return grid_tokens(feature_map)


def text_mask(token_ids, eos_token_id):
    """int32 `(B, L)`: 1 up to and including the first end-of-text token, 0 after (the padding).

    Example:
    >>> import numpy as np
    >>> np.asarray(text_mask(np.array([[1, 5, 2, 2], [1, 2, 2, 2]]), 2)).tolist()
    [[1, 1, 1, 0], [1, 1, 0, 0]]
    """
    is_end = ops.cast(ops.equal(token_ids, eos_token_id), "int32")
    ends_before = ops.cumsum(is_end, axis=1) - is_end
    return ops.cast(ops.equal(ends_before, 0), "int32")


def text_tokens(sequence_output, mask):
    """The text stream's tokens `(B, L, D)`: the text encoder's `sequence_output` with the first token's state
    replaced by the first end-of-text token's state.

    The fusion's text pooler reads the first token (METER's `[CLS]`/`<s>`, a bidirectional encoder's summary).
    Florence's text encoder is causal, as CLIP's: its start token sees nothing of the text (its state is the same
    for every question) and the summary is the end token's state — the one CLIP projects. Putting it first gives
    the pooler the question before any fusion layer has run; the other positions are unchanged. (Measured on the
    built-in VQA scenes with frozen features: "is there a X?" 53% → 72%, docs/vqa.md.)

    Args:
        sequence_output: `(B, L, D)`.
        mask: int `(B, L)` from `text_mask` (1 up to and including the first end token).

    Example:
    >>> import numpy as np
    >>> states = np.arange(8, dtype="float32").reshape(1, 4, 2)
    >>> np.asarray(text_tokens(states, np.array([[1, 1, 1, 0]]))).tolist()
    [[[4.0, 5.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]]]
    """
    length = sequence_output.shape[1]
    last = ops.sum(ops.cast(mask, "int32"), axis=1) - 1
    pick = ops.cast(ops.one_hot(last, length), sequence_output.dtype)
    summary = ops.einsum("bl,bld->bd", pick, sequence_output)
    return ops.concatenate([summary[:, None, :], sequence_output[:, 1:]], axis=1)

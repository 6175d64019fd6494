"""The multi-scale gradient-matching term of depth training (MiDaS, Ranftl et al. 2020), on log depth."""

from keras import ops


def valid_depth_mask(depth, min_depth=1e-3):
    """float32 mask of the pixels whose ground-truth depth is usable: finite and `> min_depth` (0 = invalid)."""
    depth = ops.cast(depth, "float32")
    return ops.cast(ops.logical_and(ops.isfinite(depth), depth > min_depth), "float32")


def safe_log(depth, mask, floor=1e-6):
    """`log(depth)` where `mask` is 1 and 0 elsewhere (no NaN or Inf leaks from invalid pixels)."""
    depth = ops.where(mask > 0, ops.cast(depth, "float32"), 1.0)
    return ops.log(ops.maximum(depth, floor))


def gradient_matching_loss(y_true, y_pred, mask=None, num_scales=4, min_depth=1e-3):
    """Per-image gradient-matching loss of the log-depth residual, averaged over `num_scales` scales.

    With `r = log(y_pred) - log(y_true)` on valid pixels, scale `k` keeps every `2^k`-th pixel and adds
    `Σ (|r[i, j+1] - r[i, j]| + |r[i+1, j] - r[i, j]|) / (number of valid pixel pairs)`, a difference
    counting only where both pixels are valid. It penalises blurred or shifted depth edges and, being on log
    depth, is blind to a global scale (MiDaS uses it on the inverse depth with 4 scales).

    Args:
        y_true: ground-truth depth `(B, H, W)` (0 or non-finite = invalid).
        y_pred: predicted positive depth `(B, H, W)`.
        mask: optional float/bool `(B, H, W)`, ANDed with the validity of `y_true`.
        num_scales: int >= 1.
        min_depth: ground truth at or below it is invalid.

    Returns:
        float32 `(B,)`; 0 for an image without a valid pair.
    """
    if not isinstance(num_scales, int) or num_scales < 1:
        raise ValueError(f"`num_scales` must be a positive int. Received: num_scales={num_scales!r}")
    valid = valid_depth_mask(y_true, min_depth)
    if mask is not None:
        valid = valid * ops.cast(mask, "float32")
    residual = (safe_log(y_pred, valid) - safe_log(y_true, valid)) * valid
    total = 0.0
    for scale in range(num_scales):
        step = 2**scale
        r, m = residual[:, ::step, ::step], valid[:, ::step, ::step]
        mx = m[:, :, 1:] * m[:, :, :-1]
        my = m[:, 1:, :] * m[:, :-1, :]
        gx = ops.sum(ops.abs(r[:, :, 1:] - r[:, :, :-1]) * mx, axis=(1, 2))
        gy = ops.sum(ops.abs(r[:, 1:, :] - r[:, :-1, :]) * my, axis=(1, 2))
        pairs = ops.sum(mx, axis=(1, 2)) + ops.sum(my, axis=(1, 2))
        total = total + (gx + gy) / ops.maximum(pairs, 1.0)
    return total / num_scales

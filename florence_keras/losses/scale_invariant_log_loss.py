"""`ScaleInvariantLogLoss`: Eigen et al.'s scale-invariant log loss for depth, masked, λ a parameter."""

import keras
from keras import ops

from florence_keras.losses.depth_gradient_matching import gradient_matching_loss
from florence_keras.losses.depth_gradient_matching import safe_log
from florence_keras.losses.depth_gradient_matching import valid_depth_mask


def scale_invariant_log_loss(y_true, y_pred, lam=1.0, mask=None, min_depth=1e-3):
    """Per-image scale-invariant log loss `mean(d²) - λ mean(d)²`, `d = log(y_pred) - log(y_true)`.

    The means run over the image's valid pixels (ground truth finite and `> min_depth`, and `mask`). λ = 1 is
    fully scale-invariant (Eigen et al. 2014: multiplying the prediction by any constant leaves the loss
    unchanged); λ = 0 is the mean squared log error; in between (Eigen's training used 0.5, BTS / AdaBins
    0.85) part of the absolute scale is learned. keras-hub's `DepthAnythingLoss` takes the square root of
    this quantity with λ = 0.5 by default.

    Args:
        y_true: ground-truth depth `(B, H, W)` in metres (0 or non-finite = invalid).
        y_pred: predicted positive depth `(B, H, W)`.
        lam: float in [0, 1].
        mask: optional `(B, H, W)`, ANDed with the validity of `y_true`.
        min_depth: ground truth at or below it is invalid.

    Returns:
        float32 `(B,)`; 0 for an image without a valid pixel.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"`lam` must be in [0, 1]. Received: lam={lam!r}")
    valid = valid_depth_mask(y_true, min_depth)
    if mask is not None:
        valid = valid * ops.cast(mask, "float32")
    d = (safe_log(y_pred, valid) - safe_log(y_true, valid)) * valid
    count = ops.maximum(ops.sum(valid, axis=(1, 2)), 1.0)
    mean = ops.sum(d, axis=(1, 2)) / count
    mean_square = ops.sum(ops.square(d), axis=(1, 2)) / count
    return mean_square - lam * ops.square(mean)


@keras.saving.register_keras_serializable(package="florence_keras")
class ScaleInvariantLogLoss(keras.losses.Loss):
    """Scale-invariant log loss (+ optional gradient matching) for depth maps, invalid pixels masked.

    Per image: `silog = mean(d²) - λ·mean(d)²` with `d = log(pred) - log(true)` over the valid pixels (ground
    truth finite and `> min_depth`; 16-bit depth PNGs store 0 for "no measurement"), plus
    `gradient_weight × gradient_matching_loss` when `gradient_weight > 0`. The batch loss is the mean over
    images (an image without a valid pixel contributes 0). `y_pred` must have `y_true`'s shape.

    Args:
        lam: float in [0, 1], λ. 1 is fully scale-invariant (cannot learn the absolute scale); defaults to
            0.85 [ours, as BTS / AdaBins], so that depth in metres is learned.
        gradient_weight: float >= 0, weight of the gradient-matching term. Defaults to 0.
        gradient_scales: int >= 1, scales of the gradient-matching term. Defaults to 4.
        min_depth: float, ground truth at or below it is invalid. Defaults to 1e-3 (1 mm).
        **kwargs: `keras.losses.Loss` arguments (`name`, `reduction`).

    Example:
    >>> import numpy as np
    >>> loss = ScaleInvariantLogLoss(lam=1.0)
    >>> true = np.array([[[1.0, 2.0], [4.0, 0.0]]], "float32")
    >>> round(float(loss(true, 3.0 * np.maximum(true, 1.0))), 6)  # scale-invariant; the 0 pixel is ignored
    0.0
    """

    def __init__(self, lam=0.85, gradient_weight=0.0, gradient_scales=4, min_depth=1e-3,
                 name="scale_invariant_log_loss", **kwargs):
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"`lam` must be in [0, 1]. Received: lam={lam!r}")
        if gradient_weight < 0:
            raise ValueError(f"`gradient_weight` must be >= 0. Received: gradient_weight={gradient_weight!r}")
        if not isinstance(gradient_scales, int) or gradient_scales < 1:
            raise ValueError(f"`gradient_scales` must be a positive int. Received: gradient_scales={gradient_scales!r}")
        if min_depth < 0:
            raise ValueError(f"`min_depth` must be >= 0. Received: min_depth={min_depth!r}")
        super().__init__(name=name, **kwargs)
        self.lam = float(lam)
        self.gradient_weight = float(gradient_weight)
        self.gradient_scales = gradient_scales
        self.min_depth = float(min_depth)

    def call(self, y_true, y_pred):
        y_true, y_pred = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
        if len(y_true.shape) == 4 and y_true.shape[-1] == 1:
            y_true = y_true[..., 0]
        if len(y_pred.shape) == 4 and y_pred.shape[-1] == 1:
            y_pred = y_pred[..., 0]
        if tuple(y_true.shape[1:]) != tuple(y_pred.shape[1:]):
            raise ValueError(
                f"Depth maps must have the same shape. Received: y_true {tuple(y_true.shape)}, "
                f"y_pred {tuple(y_pred.shape)}")
        loss = scale_invariant_log_loss(y_true, y_pred, lam=self.lam, min_depth=self.min_depth)
        if self.gradient_weight > 0:
            loss = loss + self.gradient_weight * gradient_matching_loss(
                y_true, y_pred, num_scales=self.gradient_scales, min_depth=self.min_depth)
        return loss

    def get_config(self):
        config = super().get_config()
        config.update({"lam": self.lam, "gradient_weight": self.gradient_weight,
                       "gradient_scales": self.gradient_scales, "min_depth": self.min_depth})
        return config

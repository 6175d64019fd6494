"""Losses of florence_keras."""

from florence_keras.losses.depth_gradient_matching import gradient_matching_loss
from florence_keras.losses.depth_metric import DepthMetric
from florence_keras.losses.scale_invariant_log_loss import ScaleInvariantLogLoss
from florence_keras.losses.scale_invariant_log_loss import scale_invariant_log_loss
from florence_keras.losses.unicl_loss import unicl_anchor_losses
from florence_keras.losses.unicl_loss import unicl_loss
from florence_keras.losses.unicl_loss_wrapper import UniCLLoss

__all__ = ["DepthMetric", "ScaleInvariantLogLoss", "UniCLLoss", "gradient_matching_loss", "scale_invariant_log_loss",
           "unicl_anchor_losses", "unicl_loss"]

"""Losses of florence_keras."""

from florence_keras.losses.unicl_loss import unicl_anchor_losses
from florence_keras.losses.unicl_loss import unicl_loss
from florence_keras.losses.unicl_loss_wrapper import UniCLLoss

__all__ = ["UniCLLoss", "unicl_anchor_losses", "unicl_loss"]

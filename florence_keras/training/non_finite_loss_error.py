"""`NonFiniteLossError`: raised when the training loss becomes NaN or infinite."""


class NonFiniteLossError(FloatingPointError):
    """The loss of a training step was NaN or Inf; training stopped without saving that state.

    Args:
        step: the 1-based number of the step whose loss was not finite.
        loss: the loss value.
        last_checkpoint: path of the last checkpoint written (all of its steps had finite losses), or None.

    Example:

    >>> str(NonFiniteLossError(7, float("nan"), "/tmp/run/checkpoints/ckpt-5"))[:32]
    'Training loss is nan at step 7. '
    """

    def __init__(self, step, loss, last_checkpoint):
        self.step = step
        self.loss = loss
        self.last_checkpoint = last_checkpoint
        where = (
            f"The last good checkpoint is {last_checkpoint}; rerun with the same model_dir to resume "
            "from it (e.g. with a lower learning rate)."
            if last_checkpoint
            else "No checkpoint had been written yet."
        )
        super().__init__(
            f"Training loss is {loss} at step {step}. Training stopped and this state was not saved. {where}"
        )

"""`WarmupCosineDecay`: linear warm-up followed by cosine decay."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="florence_keras")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to a peak learning rate, then cosine decay to an end learning rate.

    Florence does not report its schedule; this is UniCL's / open_clip's [ours, SPEC §1]. For step t
    (0-based, the optimizer's iteration count when the update is applied):

        t < warmup_steps:  lr = peak · (t + 1) / warmup_steps
        otherwise:         lr = end + ½ (peak − end) (1 + cos(π · min(1, (t − warmup_steps) /
                                                                    (total_steps − warmup_steps))))

    The first update thus uses peak / warmup_steps (not 0), the peak is reached at the last warm-up
    step, and `end_learning_rate` is held after `total_steps`.

    Args:
        peak_learning_rate: float > 0, the learning rate at the end of warm-up.
        total_steps: int > 0, the total number of training steps (warm-up included).
        warmup_steps: int in [0, total_steps). Defaults to 0.
        end_learning_rate: float in [0, peak_learning_rate]. Defaults to 0.
        name: optional name.

    Example:

    >>> schedule = WarmupCosineDecay(1e-3, total_steps=100, warmup_steps=10)
    >>> [round(float(schedule(t)), 6) for t in (0, 9, 55, 100)]
    [0.0001, 0.001, 0.0005, 0.0]
    """

    def __init__(
        self,
        peak_learning_rate,
        total_steps,
        warmup_steps=0,
        end_learning_rate=0.0,
        name="warmup_cosine_decay",
    ):
        if not peak_learning_rate > 0:
            raise ValueError(
                f"`peak_learning_rate` must be > 0. Received: peak_learning_rate={peak_learning_rate}"
            )
        if not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(
                f"`total_steps` must be a positive int. Received: total_steps={total_steps!r}"
            )
        if not isinstance(warmup_steps, int) or not 0 <= warmup_steps < total_steps:
            raise ValueError(
                "`warmup_steps` must be an int in [0, total_steps). "
                f"Received: warmup_steps={warmup_steps!r}, total_steps={total_steps}"
            )
        if not 0 <= end_learning_rate <= peak_learning_rate:
            raise ValueError(
                "`end_learning_rate` must be in [0, peak_learning_rate]. "
                f"Received: end_learning_rate={end_learning_rate}, "
                f"peak_learning_rate={peak_learning_rate}"
            )
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.end_learning_rate = float(end_learning_rate)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        end = self.end_learning_rate
        warmup = float(max(self.warmup_steps, 1))
        warmup_lr = peak * (step + 1.0) / warmup
        progress = (step - float(self.warmup_steps)) / float(self.total_steps - self.warmup_steps)
        progress = ops.clip(progress, 0.0, 1.0)
        cosine_lr = end + 0.5 * (peak - end) * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < float(self.warmup_steps), warmup_lr, cosine_lr)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "end_learning_rate": self.end_learning_rate,
            "name": self.name,
        }

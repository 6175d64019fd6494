"""Stochastic depth on residual branches."""

import keras
from keras import ops

from florence_keras.layers.example_window import per_example_uniform


@keras.saving.register_keras_serializable(package="florence_keras")
class DropPath(keras.layers.Layer):
    """Drops a whole residual branch per example (stochastic depth).

    In training each example's branch is zeroed with probability `rate` and
    scaled by `1 / (1 - rate)` otherwise; at inference it is the identity.
    Inside an `example_window` the masks are drawn for the whole global batch and
    this call keeps its rows, so an example's mask does not depend on how the
    batch is split over replicas or gradient-cache chunks.

    Args:
        rate: float in `[0, 1)`, the drop probability.
        seed: optional int for the random generator.

    Example:
    >>> import numpy as np
    >>> DropPath(0.5)(np.ones((2, 3), "float32")).shape
    TensorShape([2, 3])
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"`rate` must be in [0, 1). Received: rate={rate}")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if rate else None

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        rows = ops.shape(inputs)[0]
        keep = 1.0 - self.rate
        noise = per_example_uniform(rows, self.seed_generator, inputs.dtype)
        noise = ops.reshape(noise, (rows,) + (1,) * (len(inputs.shape) - 1))
        # Scale the per-example mask, not the activations: one full-size pass.
        return inputs * (ops.floor(keep + noise) / keep)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config

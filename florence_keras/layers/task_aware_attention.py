"""`TaskAwareAttention`: Dynamic Head's task-aware attention, a dynamic ReLU (DyReLU-B, two pieces, per channel)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="florence_keras")
class TaskAwareAttention(keras.layers.Layer):
    """Dynamic ReLU: `max(a1 * x + b1, a2 * x + b2)` with coefficients per image and channel from the pooled map.

    As the reference `DYReLU` of microsoft/DynamicHead (Chen et al. 2020, DyReLU-B with K = 2): `theta =
    hard_sigmoid(FC_2(ReLU(FC_1(GAP(x)))))`, FC_1: C -> C // reduction, FC_2: -> 4C, split in this order into
    `a1, b1, a2, b2` (C each); then `a1 = 2 (a1 - 0.5) + 1`, `a2 = 2 (a2 - 0.5)`, `b1 = b1 - 0.5`, `b2 = b2 - 0.5`
    (lambda_a = 1 doubled as in the code, init_a = (1, 0), init_b = (0, 0)), so a coefficient vector of 0.5 gives
    the plain ReLU. `hard_sigmoid(x) = relu6(x + 3) / 6`.

    Args:
        reduction: int >= 1, default 4: the squeeze of FC_1 (at least 1 unit).
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: `(B, H, W, C)`.

    Returns:
        `(B, H, W, C)`.

    Example:
    >>> import numpy as np
    >>> tuple(TaskAwareAttention()(np.ones((1, 4, 3, 8), "float32")).shape)
    (1, 4, 3, 8)
    """

    def __init__(self, reduction=4, **kwargs):
        if not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"`reduction` must be a positive int. Received: reduction={reduction!r}")
        super().__init__(**kwargs)
        self.reduction = reduction

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"The channel dimension of the inputs must be known. Received shape: {input_shape}")
        self.squeeze = keras.layers.Dense(max(channels // self.reduction, 1), activation="relu", name="squeeze",
                                          dtype=self.dtype_policy)
        self.expand = keras.layers.Dense(4 * channels, name="expand", dtype=self.dtype_policy)
        self.squeeze.build((None, channels))
        self.expand.build((None, max(channels // self.reduction, 1)))
        self.built = True

    def coefficients(self, inputs):
        """`(a1, b1, a2, b2)`, each `(B, 1, 1, C)`."""
        theta = ops.hard_sigmoid(self.expand(self.squeeze(ops.mean(inputs, axis=(1, 2)))))
        a1, b1, a2, b2 = (part[:, None, None, :] for part in ops.split(theta, 4, axis=-1))
        return 2.0 * (a1 - 0.5) + 1.0, b1 - 0.5, 2.0 * (a2 - 0.5), b2 - 0.5

    def call(self, inputs):
        a1, b1, a2, b2 = self.coefficients(inputs)
        return ops.maximum(inputs * a1 + b1, inputs * a2 + b2)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction})
        return config

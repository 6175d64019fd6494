"""`ScaleAwareAttention`: Dynamic Head's per-level (scale) attention, a scalar gate from the pooled level."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="florence_keras")
class ScaleAwareAttention(keras.layers.Layer):
    """Multiplies a feature map by `pi = hard_sigmoid(ReLU(conv1x1(GAP(x))))`, one scalar per image.

    Dynamic Head's scale-aware attention (Dai et al. 2021, `DyConv.AttnConv` in microsoft/DynamicHead). The 1x1
    convolution of the globally pooled map (C -> 1, with bias) is a dense layer on the pooled vector.
    `hard_sigmoid(x) = relu6(x + 3) / 6` (= `keras.ops.hard_sigmoid`) follows the reference code, not the paper's
    `max(0, min(1, (x + 1) / 2))`; after the ReLU its argument is >= 0, so `pi` lies in [0.5, 1]. Initialised as the
    reference: weights N(0, 0.01), bias 0 (so `pi` starts near 0.5).

    Args:
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: `(B, H, W, C)`.

    Returns:
        `(B, H, W, C)`: `inputs * pi`.

    Example:
    >>> import numpy as np
    >>> tuple(ScaleAwareAttention()(np.ones((2, 3, 5, 4), "float32")).shape)
    (2, 3, 5, 4)
    """

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"The channel dimension of the inputs must be known. Received shape: {input_shape}")
        self.gate = keras.layers.Dense(1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                                       name="gate", dtype=self.dtype_policy)
        self.gate.build((None, input_shape[-1]))
        self.built = True

    def attention(self, inputs):
        """`pi`, shape `(B, 1, 1, 1)`."""
        pooled = ops.mean(inputs, axis=(1, 2))
        return ops.hard_sigmoid(ops.relu(self.gate(pooled)))[:, None, None, :]

    def call(self, inputs):
        return inputs * self.attention(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

"""`DepthFusionBlock`: one top-down step of the depth decoder (FPN-style fusion + a residual refinement)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="florence_keras")
class DepthFusionBlock(keras.layers.Layer):
    """Fuses a coarse decoder map into a finer backbone map, then refines the sum.

    `x = resize(coarse, size of lateral) + Conv1x1(lateral)`, then a residual unit
    `x + Conv3x3(ReLU(Conv3x3(ReLU(x))))` (DPT's "residual conv unit"). The coarse map is resized bilinearly to
    the lateral map's size, whatever the ratio (CoSwin rounds every downsampling up, so odd sizes occur).

    Args:
        channels: int > 0, channels of the output (and of `coarse`).
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: `[coarse, lateral]`: `(B, h, w, channels)` and `(B, H, W, C_lateral)`.

    Returns:
        `(B, H, W, channels)`.

    Example:
    >>> import numpy as np
    >>> block = DepthFusionBlock(8)
    >>> tuple(block([np.zeros((1, 2, 2, 8), "float32"), np.zeros((1, 4, 4, 5), "float32")]).shape)
    (1, 4, 4, 8)
    """

    def __init__(self, channels, **kwargs):
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"`channels` must be a positive int. Received: channels={channels!r}")
        super().__init__(**kwargs)
        self.channels = channels

    def build(self, input_shape):
        coarse_shape, lateral_shape = input_shape
        if coarse_shape[-1] != self.channels:
            raise ValueError(f"`coarse` must have {self.channels} channels. Received shape: {coarse_shape}")
        conv = dict(dtype=self.dtype_policy)
        self.lateral = keras.layers.Conv2D(self.channels, 1, name="lateral", **conv)
        self.refine_1 = keras.layers.Conv2D(self.channels, 3, padding="same", name="refine_1", **conv)
        self.refine_2 = keras.layers.Conv2D(self.channels, 3, padding="same", name="refine_2", **conv)
        self.lateral.build(lateral_shape)
        out_shape = tuple(lateral_shape[:-1]) + (self.channels,)
        self.refine_1.build(out_shape)
        self.refine_2.build(out_shape)
        self.built = True

    def call(self, inputs):
        coarse, lateral = inputs
        height, width = lateral.shape[1], lateral.shape[2]
        if height is None or width is None:
            height, width = ops.shape(lateral)[1], ops.shape(lateral)[2]
        x = ops.image.resize(coarse, (height, width), interpolation="bilinear") + self.lateral(lateral)
        return x + self.refine_2(ops.relu(self.refine_1(ops.relu(x))))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1][:-1]) + (self.channels,)

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels})
        return config

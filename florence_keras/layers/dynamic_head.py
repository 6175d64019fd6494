"""`DynamicHead`: a stack of Dynamic Head blocks over a feature pyramid (Dai et al. 2021)."""

import keras

from florence_keras.layers.dy_head_block import DyHeadBlock


@keras.saving.register_keras_serializable(package="florence_keras")
class DynamicHead(keras.layers.Layer):
    """`num_blocks` `DyHeadBlock`s applied in sequence to a list of pyramid levels; shapes are kept.

    The detector's default is microsoft/DynamicHead's ATSS configuration: 6 blocks x 256 channels on an FPN over
    backbone stages 3-5 plus P6/P7 (5 levels). With `num_blocks=0` it is the identity. See `DyHeadBlock`,
    `SpatialAwareAttention` (and the fix of the reference's l+1 offsets there), `ScaleAwareAttention`,
    `TaskAwareAttention` and docs/detection_layers.md.

    Args:
        num_blocks: int >= 0, default 6.
        channels: int > 0, default 256: the channels of every level (checked).
        norm_groups: int >= 1, default 16: GroupNorm groups; must divide `channels`.
        reduction: int >= 1, default 4: the dynamic ReLU's squeeze.
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: list of L >= 1 maps `(B, H_l, W_l, channels)`, finest first, each level half the previous one
            (rounded up: any sizes, odd ones included).

    Returns:
        A list of L maps of the same shapes.

    Example:
    >>> import numpy as np
    >>> head = DynamicHead(num_blocks=1, channels=8, norm_groups=4)
    >>> levels = [np.ones((1, 9, 7, 8), "float32"), np.ones((1, 5, 4, 8), "float32"), np.ones((1, 3, 2, 8), "float32")]
    >>> [tuple(y.shape) for y in head(levels)]
    [(1, 9, 7, 8), (1, 5, 4, 8), (1, 3, 2, 8)]
    """

    def __init__(self, num_blocks=6, channels=256, norm_groups=16, reduction=4, **kwargs):
        if not isinstance(num_blocks, int) or num_blocks < 0:
            raise ValueError(f"`num_blocks` must be an int >= 0. Received: num_blocks={num_blocks!r}")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"`channels` must be a positive int. Received: channels={channels!r}")
        if not isinstance(norm_groups, int) or norm_groups < 1 or channels % norm_groups:
            raise ValueError(f"`norm_groups` must be a positive int dividing channels={channels}. "
                             f"Received: norm_groups={norm_groups!r}")
        if not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"`reduction` must be a positive int. Received: reduction={reduction!r}")
        super().__init__(**kwargs)
        self.num_blocks = num_blocks
        self.channels = channels
        self.norm_groups = norm_groups
        self.reduction = reduction
        self.blocks = [DyHeadBlock(norm_groups, reduction, name=f"block_{i}", dtype=self.dtype_policy)
                       for i in range(num_blocks)]

    def build(self, input_shape):
        if (not isinstance(input_shape, (list, tuple)) or not input_shape
                or any(shape is None or isinstance(shape, int) for shape in input_shape)):
            raise ValueError(f"Expected a list of feature maps. Received shape: {input_shape}")
        input_shape = [tuple(shape) for shape in input_shape]
        for shape in input_shape:
            if len(shape) != 4 or shape[-1] != self.channels:
                raise ValueError(f"Every level must be (B, H, W, {self.channels}). Received: {input_shape}")
        for block in self.blocks:
            block.build(input_shape)
        self.built = True

    def call(self, inputs):
        outputs = list(inputs)
        for block in self.blocks:
            outputs = block(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return [tuple(shape) for shape in input_shape]

    def get_config(self):
        config = super().get_config()
        config.update({"num_blocks": self.num_blocks, "channels": self.channels, "norm_groups": self.norm_groups,
                       "reduction": self.reduction})
        return config

"""`SpatialAwareAttention`: Dynamic Head's spatial attention, three DCNv2 branches over neighbouring levels."""

import keras
from keras import ops

from florence_keras.layers.modulated_deformable_conv2d import ModulatedDeformableConv2D


def _resize_axis(x, out_size, axis):
    """Linear resize of `x` along spatial `axis` (1 or 2) with half-pixel centres, as `tf.image.resize`."""
    in_size = x.shape[axis] if x.shape[axis] is not None else ops.shape(x)[axis]
    scale = ops.cast(in_size, "float32") / ops.cast(out_size, "float32")
    source = ops.clip((ops.cast(ops.arange(out_size), "float32") + 0.5) * scale - 0.5, 0.0,
                      ops.cast(in_size - 1, "float32"))
    low = ops.floor(source)
    high = ops.minimum(low + 1.0, ops.cast(in_size - 1, "float32"))
    frac = ops.cast(source - low, x.dtype)
    frac = frac[:, None, None] if axis == 1 else frac[:, None]
    x_low = ops.take(x, ops.cast(low, "int32"), axis=axis)
    x_high = ops.take(x, ops.cast(high, "int32"), axis=axis)
    return x_low + (x_high - x_low) * frac


def _resize_bilinear(x, like):
    """Resizes `x` (B, h, w, C) to the spatial size of `like`, bilinear with half-pixel centres.

    `keras.ops.image.resize` when the size is known while tracing (faster); it refuses sizes known only at run
    time, which are done by two gathers per axis instead (same numbers, to float rounding).
    """
    height, width = like.shape[1], like.shape[2]
    if height is not None and width is not None:
        return ops.image.resize(x, (height, width), interpolation="bilinear")
    return _resize_axis(_resize_axis(x, ops.shape(like)[1], axis=1), ops.shape(like)[2], axis=2)


@keras.saving.register_keras_serializable(package="florence_keras")
class SpatialAwareAttention(keras.layers.Layer):
    """For each pyramid level l, modulated deformable 3x3 convolutions of levels l-1, l and l+1 onto level l's grid.

    As `DyConv` of microsoft/DynamicHead: one 3x3 convolution (C -> 27, zero-initialised as in mmdet's DyHead) of
    level l gives the offsets (first 18 channels, interleaved (dy, dx) per tap, taps row-major) and the modulation
    (sigmoid of the last 9). Three `ModulatedDeformableConv2D` (no bias) + `GroupNormalization(norm_groups,
    epsilon=1e-5)` branches, shared by all levels, give: `mid` = level l (stride 1), `low` = level l-1 (stride 2,
    which lands on level l's grid), `high` = level l+1 (stride 1, then bilinearly resized to level l's size).

    The fix of the reference's bug: upstream passes level l's offsets to the `high` branch, which runs at level l+1's
    (half) resolution, so the offset map does not fit (microsoft/DynamicHead#25, GLIP#62). Here the `high` branch
    runs at level l+1's resolution with level l+1's own offsets and modulation (the same offset convolution applied
    to level l+1, already computed when l+1 is the middle level, so it costs nothing extra), then is resized. The
    resize uses half-pixel centres (as `keras.ops.image.resize` and the rest of florence_keras, matching the 2x2
    patch-merging geometry of CoSwin) where the reference's `F.upsample_bilinear` aligns corners.

    Levels must halve (rounding up): level l+1 is `ceil(H_l / 2) x ceil(W_l / 2)`; any sizes, odd ones included.

    Args:
        norm_groups: int >= 1, default 16; the channels must divide by it.
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: list of L >= 1 maps `(B, H_l, W_l, C)`, finest first.

    Returns:
        A list of L lists: for level l, `[mid, low, high]` (`low` only when l > 0, `high` only when l < L-1), each
        `(B, H_l, W_l, C)`, in the reference's order.

    Example:
    >>> import numpy as np
    >>> attention = SpatialAwareAttention(norm_groups=4)
    >>> out = attention([np.zeros((1, 7, 5, 8), "float32"), np.zeros((1, 4, 3, 8), "float32")])
    >>> [len(branches) for branches in out], tuple(out[1][1].shape)
    ([2, 2], (1, 4, 3, 8))
    """

    def __init__(self, norm_groups=16, **kwargs):
        if not isinstance(norm_groups, int) or norm_groups < 1:
            raise ValueError(f"`norm_groups` must be a positive int. Received: norm_groups={norm_groups!r}")
        super().__init__(**kwargs)
        self.norm_groups = norm_groups

    def build(self, input_shape):
        if (not isinstance(input_shape, (list, tuple)) or not input_shape
                or any(shape is None or isinstance(shape, int) for shape in input_shape)):
            raise ValueError(f"Expected a list of feature maps. Received shape: {input_shape}")
        input_shape = [tuple(shape) for shape in input_shape]
        channels = input_shape[0][-1]
        for shape in input_shape:
            if len(shape) != 4 or shape[-1] != channels or channels is None:
                raise ValueError(f"Every level must be (B, H, W, C) with the same known C. Received: {input_shape}")
        for finer, coarser in zip(input_shape[:-1], input_shape[1:]):
            for fine, coarse in zip(finer[1:3], coarser[1:3]):
                if fine is not None and coarse is not None and -(-fine // 2) != coarse:
                    raise ValueError(f"Each level must be half the previous one, rounded up. Received: {input_shape}")
        if channels % self.norm_groups:
            raise ValueError(f"The channels ({channels}) must divide by norm_groups={self.norm_groups}.")
        level_shape = (None, None, None, channels)
        conv = dict(dtype=self.dtype_policy)
        self.offset_mask = keras.layers.Conv2D(27, 3, padding="same", kernel_initializer="zeros", name="offset_mask",
                                               **conv)
        self.offset_mask.build(level_shape)
        self.convs, self.norms = {}, {}
        for name, strides in (("mid", 1), ("low", 2), ("high", 1)):
            self.convs[name] = ModulatedDeformableConv2D(channels, strides=strides, use_bias=False, offset_conv=False,
                                                         name=f"{name}_conv", **conv)
            self.convs[name].build(level_shape)
            self.norms[name] = keras.layers.GroupNormalization(self.norm_groups, epsilon=1e-5, name=f"{name}_norm",
                                                               **conv)
            self.norms[name].build(level_shape)
        self.built = True

    def _branch(self, name, x, offset, modulation):
        return self.norms[name](self.convs[name](x, offset=offset, modulation=modulation))

    def call(self, inputs):
        inputs = list(inputs)
        predicted = [self.offset_mask(x) for x in inputs]
        offsets = [p[..., :18] for p in predicted]
        modulations = [ops.sigmoid(p[..., 18:]) for p in predicted]
        outputs = []
        for level, x in enumerate(inputs):
            branches = [self._branch("mid", x, offsets[level], modulations[level])]
            if level > 0:
                branches.append(self._branch("low", inputs[level - 1], offsets[level], modulations[level]))
            if level < len(inputs) - 1:
                high = self._branch("high", inputs[level + 1], offsets[level + 1], modulations[level + 1])
                branches.append(_resize_bilinear(high, x))
            outputs.append(branches)
        return outputs

    def compute_output_shape(self, input_shape):
        last = len(input_shape) - 1
        return [[tuple(shape)] * (1 + (level > 0) + (level < last)) for level, shape in enumerate(input_shape)]

    def get_config(self):
        config = super().get_config()
        config.update({"norm_groups": self.norm_groups})
        return config

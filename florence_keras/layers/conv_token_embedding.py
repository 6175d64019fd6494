"""Convolutional token embedding: a strided convolution followed by LayerNorm."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="florence_keras")
class ConvTokenEmbedding(keras.layers.Layer):
    """Strided convolution + LayerNorm that turns a map into a coarser token map.

    CoSwin replaces Swin's patch embedding and patch merging with CvT's
    convolutional token embedding: a `kernel_size` convolution with stride
    `strides` and CvT's zero padding (2 for the 7x7/4 stem, 1 for the 3x3/2
    convolutions between stages), then LayerNorm over channels
    (`padding="symmetric"`).
    With `padding="end"` and `kernel_size == strides` it is exactly Swin's linear
    patch embedding (non-overlapping patches; the map is zero-padded at the
    bottom/right to a multiple of the patch size, as transformers' Swin does).
    Either way the output extent is `ceil(extent / strides)`.

    Works channels-last for 2-D `(B, H, W, C)` maps; 3-D `(B, T, H, W, C)` video
    maps use a 3-D convolution (`kernel_size` / `strides` given per axis).

    Args:
        filters: int, output channels.
        kernel_size: int or tuple.
        strides: int or tuple.
        padding: `"symmetric"` (CvT) or `"end"` (Swin patch embedding).
        use_norm: bool, whether LayerNorm follows the convolution.
        layer_norm_epsilon: float.

    Example:
    >>> import numpy as np
    >>> layer = ConvTokenEmbedding(8, kernel_size=7, strides=4)
    >>> tuple(layer(np.zeros((1, 30, 22, 3), "float32")).shape)
    (1, 8, 6, 8)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides,
        padding="symmetric",
        use_norm=True,
        layer_norm_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if padding not in ("symmetric", "end"):
            raise ValueError(
                f"`padding` must be 'symmetric' or 'end'. Received: padding={padding!r}"
            )
        if filters <= 0:
            raise ValueError(f"`filters` must be positive. Received: filters={filters}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.use_norm = use_norm
        self.layer_norm_epsilon = layer_norm_epsilon
        self.norm = (
            keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="norm"
            )
            if use_norm
            else None
        )

    def _per_axis(self, value, rank):
        if isinstance(value, int):
            return (value,) * rank
        value = tuple(int(v) for v in value)
        if len(value) != rank:
            raise ValueError(
                f"{self.name}: expected {rank} values for a {rank}-D map. Received: {value}"
            )
        return value

    def build(self, input_shape):
        rank = len(input_shape) - 2
        if rank not in (2, 3):
            raise ValueError(
                f"{self.name} takes (B, H, W, C) or (B, T, H, W, C) maps. "
                f"Received input shape: {input_shape}"
            )
        self.rank = rank
        self.kernel = self._per_axis(self.kernel_size, rank)
        self.stride = self._per_axis(self.strides, rank)
        conv_cls = keras.layers.Conv2D if rank == 2 else keras.layers.Conv3D
        self.conv = conv_cls(
            self.filters,
            self.kernel,
            strides=self.stride,
            padding="valid",
            dtype=self.dtype_policy,
            name="conv",
        )
        self.conv.build((None,) * (rank + 1) + (input_shape[-1],))
        if self.norm is not None:
            self.norm.build((None,) * (rank + 1) + (self.filters,))
        self.built = True

    def padding_for(self, spatial_shape):
        """Per-axis `(before, after)` zero padding for a map of `spatial_shape`.

        Computed per call from the static input shape, so one layer serves any
        input size; the output extent is `ceil(extent / stride)` either way.
        """
        pads = []
        for extent, k, s in zip(spatial_shape, self.kernel, self.stride):
            if extent is None:
                raise ValueError(
                    f"{self.name} needs static spatial extents. Received: {spatial_shape}"
                )
            out = -(-extent // s)
            if self.padding == "symmetric":
                before = (k - s + 1) // 2  # CvT: 2 for 7x7/4, 1 for 3x3/2
                after = max((out - 1) * s + k - extent - before, 0)
            else:
                before, after = 0, (out - 1) * s + k - extent
            pads.append((before, after))
        return pads

    def call(self, inputs):
        pads = self.padding_for(tuple(inputs.shape[1:-1]))
        x = inputs
        if any(p[0] or p[1] for p in pads):
            x = ops.pad(x, [(0, 0)] + pads + [(0, 0)])
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return x

    def compute_output_shape(self, input_shape):
        spatial = [
            None if e is None else -(-e // s)
            for e, s in zip(input_shape[1:-1], self._per_axis(self.strides, len(input_shape) - 2))
        ]
        return (input_shape[0], *spatial, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "use_norm": self.use_norm,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config

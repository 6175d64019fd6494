"""`DetectionFPN`: a feature pyramid network over three backbone stages plus two extra stride-2 levels."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="florence_keras")
class DetectionFPN(keras.layers.Layer):
    """FPN (Lin et al. 2017) as Dynamic Head's ATSS configs build it: C3-C5 -> P3-P7, all `channels` wide.

    Each input level is layer-normalised first (the CoSwin stages' raw outputs grow with depth; Swin's
    dense-prediction backbones put a norm on every output stage), then a 1×1 lateral conv; the top-down path
    adds the coarser map upsampled (nearest) to each finer one; a 3×3 conv smooths each sum. P6 is a 3×3
    stride-2 conv on P5 and P7 a 3×3 stride-2 conv on ReLU(P6) (P6/P7 "from P5", as the reference).

    Args:
        channels: int > 0, the pyramid's width. Defaults to 256.
        num_extra_levels: int >= 0, stride-2 levels added on top (2: P6, P7). Defaults to 2.
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: list of maps `(B, H_l, W_l, C_l)` from finest to coarsest (C3, C4, C5).

    Returns:
        list of `len(inputs) + num_extra_levels` maps `(B, H_l, W_l, channels)`, finest first.

    Example:
    >>> import numpy as np
    >>> fpn = DetectionFPN(channels=8)
    >>> levels = fpn([np.zeros((1, 8, 8, 4), "float32"), np.zeros((1, 4, 4, 6), "float32"),
    ...               np.zeros((1, 2, 2, 8), "float32")])
    >>> [tuple(level.shape) for level in levels]
    [(1, 8, 8, 8), (1, 4, 4, 8), (1, 2, 2, 8), (1, 1, 1, 8), (1, 1, 1, 8)]
    """

    def __init__(self, channels=256, num_extra_levels=2, **kwargs):
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"`channels` must be a positive int. Received: channels={channels!r}")
        if not isinstance(num_extra_levels, int) or num_extra_levels < 0:
            raise ValueError(f"`num_extra_levels` must be an int >= 0. Received: num_extra_levels={num_extra_levels!r}")
        super().__init__(**kwargs)
        self.channels = channels
        self.num_extra_levels = num_extra_levels

    def _conv(self, name, kernel_size, strides=1):
        return keras.layers.Conv2D(self.channels, kernel_size, strides=strides, padding="same", name=name,
                                   dtype=self.dtype_policy)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 1:
            raise ValueError(f"DetectionFPN takes a list of feature maps. Received: {input_shape}")
        self.norms, self.laterals, self.outputs = [], [], []
        for index, shape in enumerate(input_shape):
            norm = keras.layers.LayerNormalization(epsilon=1e-5, name=f"norm_{index}", dtype=self.dtype_policy)
            norm.build(shape)
            lateral = self._conv(f"lateral_{index}", 1)
            lateral.build(shape)
            output = self._conv(f"output_{index}", 3)
            output.build(tuple(shape[:-1]) + (self.channels,))
            self.norms.append(norm)
            self.laterals.append(lateral)
            self.outputs.append(output)
        self.extras = []
        for index in range(self.num_extra_levels):
            extra = self._conv(f"extra_{index}", 3, strides=2)
            extra.build((None, None, None, self.channels))
            self.extras.append(extra)
        self.built = True

    def call(self, inputs):
        laterals = [lateral(norm(x)) for norm, lateral, x in zip(self.norms, self.laterals, inputs)]
        merged = [laterals[-1]]
        for lateral in reversed(laterals[:-1]):
            coarser = merged[0]
            # Nearest ×2 upsampling, cropped to the finer map (a stage of odd size rounds its stride-2 map up).
            upsampled = ops.repeat(ops.repeat(coarser, 2, axis=1), 2, axis=2)
            merged.insert(0, lateral + upsampled[:, :ops.shape(lateral)[1], :ops.shape(lateral)[2]])
        levels = [conv(x) for conv, x in zip(self.outputs, merged)]
        x = levels[-1]
        for index, extra in enumerate(self.extras):
            x = extra(x if index == 0 else ops.relu(x))
            levels.append(x)
        return levels

    def compute_output_shape(self, input_shape):
        shapes = [tuple(shape[:-1]) + (self.channels,) for shape in input_shape]
        height, width = shapes[-1][1], shapes[-1][2]
        for _ in range(self.num_extra_levels):
            height = None if height is None else (height + 1) // 2
            width = None if width is None else (width + 1) // 2
            shapes.append((shapes[0][0], height, width, self.channels))
        return shapes

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "num_extra_levels": self.num_extra_levels})
        return config

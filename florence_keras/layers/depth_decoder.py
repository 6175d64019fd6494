"""`DepthDecoder`: an FPN-style decoder from a CoSwin feature pyramid to a full-resolution depth map."""

import keras

from florence_keras.layers.depth_fusion_block import DepthFusionBlock
from florence_keras.layers.depth_upsampling_head import DepthUpsamplingHead


@keras.saving.register_keras_serializable(package="florence_keras")
class DepthDecoder(keras.layers.Layer):
    """Fuses a feature pyramid top-down and upsamples to depth in metres at the image's resolution.

    Each level is layer-normalised; the coarsest map (P5 for a 4-stage CoSwin) is projected to `channels` by a 1×1 conv; each finer map is
    fused in by a `DepthFusionBlock` (bilinear upsampling of the running map + 1×1 lateral + residual
    refinement), down to P2 (stride 4); `DepthUpsamplingHead` then upsamples ×2 twice with convolutions and
    resizes to the image's exact size, predicting bounded positive depth. Any number of levels ≥ 1 works (a
    2-stage test model has P2, P3) and any image size whose maps the backbone produces.

    Args:
        channels: int > 0, the decoder's width. Defaults to 64.
        num_upsamplings: int >= 0, ×2 steps of the head (log2 of the finest map's stride). Defaults to 2.
        min_depth, max_depth: the output range in metres. Defaults to 0.1 and 100.
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: `[images, P2, P3, ...]`: the images `(B, H, W, 3)` (only their size is read), then the
            pyramid from finest to coarsest.

    Returns:
        float32 depth `(B, H, W)`.

    Example:
    >>> import numpy as np
    >>> decoder = DepthDecoder(channels=16)
    >>> images = np.zeros((2, 32, 32, 3), "float32")
    >>> p2, p3 = np.zeros((2, 8, 8, 4), "float32"), np.zeros((2, 4, 4, 8), "float32")
    >>> tuple(decoder([images, p2, p3]).shape)
    (2, 32, 32)
    """

    def __init__(self, channels=64, num_upsamplings=2, min_depth=0.1, max_depth=100.0, **kwargs):
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"`channels` must be a positive int. Received: channels={channels!r}")
        super().__init__(**kwargs)
        self.channels = channels
        self.num_upsamplings = num_upsamplings
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        # Checks its arguments now, so a bad config fails at construction.
        self.head = DepthUpsamplingHead(channels, num_upsamplings=num_upsamplings, min_depth=min_depth,
                                        max_depth=max_depth, dtype=self.dtype_policy, name="head")

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"DepthDecoder needs [images, P2, ...]: at least one pyramid level. Received: "
                             f"{len(input_shape)} input(s)")
        image_shape, levels = input_shape[0], list(input_shape[1:])
        # A LayerNorm on every level, as Swin's dense-prediction backbones put on each output stage: the raw
        # stage outputs grow with depth (P5's spread is ~10x P2's in florence_mini_builtin).
        self.level_norms = []
        for index, shape in enumerate(levels):
            norm = keras.layers.LayerNormalization(epsilon=1e-5, name=f"norm_p{index + 2}", dtype=self.dtype_policy)
            norm.build(shape)
            self.level_norms.append(norm)
        self.top = keras.layers.Conv2D(self.channels, 1, name="top", dtype=self.dtype_policy)
        self.top.build(levels[-1])
        self.fusions = []
        for index in range(len(levels) - 2, -1, -1):
            block = DepthFusionBlock(self.channels, name=f"fusion_p{index + 2}", dtype=self.dtype_policy)
            block.build([tuple(levels[index + 1][:-1]) + (self.channels,), levels[index]])
            self.fusions.append(block)
        self.head.build([tuple(levels[0][:-1]) + (self.channels,), image_shape])
        self.built = True

    def call(self, inputs):
        images = inputs[0]
        levels = [norm(level) for norm, level in zip(self.level_norms, inputs[1:])]
        x = self.top(levels[-1])
        for block, lateral in zip(self.fusions, reversed(levels[:-1])):
            x = block([x, lateral])
        return self.head([x, images])

    def compute_output_spec(self, inputs):
        images = inputs[0]
        return keras.KerasTensor((images.shape[0], images.shape[1], images.shape[2]), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "num_upsamplings": self.num_upsamplings,
                       "min_depth": self.min_depth, "max_depth": self.max_depth})
        return config

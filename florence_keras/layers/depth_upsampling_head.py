"""`DepthUpsamplingHead`: the depth decoder's last stage — progressive upsampling to full resolution, positive depth."""

import math

import keras
from keras import ops


def upsampling_steps(stride):
    """The x2 upsamplings from a map of this stride to the image (log2 of a power of 2; a decoder's
    `num_upsamplings` after the encoder's finest map, whose stride is the patch size)."""
    steps = 0
    while stride > 1:
        if stride % 2:
            raise ValueError(f"The image encoder's patch size must be a power of 2. Received: {stride}")
        stride //= 2
        steps += 1
    return steps


@keras.saving.register_keras_serializable(package="florence_keras")
class DepthUpsamplingHead(keras.layers.Layer):
    """Upsamples the finest fused map to the image's resolution and predicts positive depth in metres.

    `num_upsamplings` times: bilinear ×2 then Conv3x3 + GELU (halving the channels, at least 8); then a bilinear
    resize to the image's exact size and a Conv3x3 to one channel `z`. Depth is the exponential of the
    log-depth `z + (log min_depth + log max_depth) / 2` (so `z = 0` gives their geometric mean), clamped to
    `[min_depth, max_depth]` in the forward pass with a straight-through gradient: always positive and in
    range, and never stuck (a sigmoid bound saturates).

    Args:
        channels: int > 0, channels of the input map.
        num_upsamplings: int >= 0, ×2 steps before the final resize. Defaults to 2 (stride 4 -> 1).
        min_depth, max_depth: floats, 0 < min_depth < max_depth, in metres. Defaults to 0.1 and 100.
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: `[features, images]`: `(B, h, w, channels)`, and the images `(B, H, W, 3)` (read for their size).

    Returns:
        float32 depth `(B, H, W)`.
    """

    def __init__(self, channels, num_upsamplings=2, min_depth=0.1, max_depth=100.0, **kwargs):
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"`channels` must be a positive int. Received: channels={channels!r}")
        if not isinstance(num_upsamplings, int) or num_upsamplings < 0:
            raise ValueError(f"`num_upsamplings` must be an int >= 0. Received: num_upsamplings={num_upsamplings!r}")
        if not 0 < min_depth < max_depth:
            raise ValueError(f"Need 0 < min_depth < max_depth. Received: min_depth={min_depth}, max_depth={max_depth}")
        super().__init__(**kwargs)
        self.channels = channels
        self.num_upsamplings = num_upsamplings
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)

    def build(self, input_shape):
        shape = list(input_shape[0])
        self.convs = []
        width = self.channels
        for i in range(self.num_upsamplings):
            width = max(width // 2, 8)
            conv = keras.layers.Conv2D(width, 3, padding="same", name=f"upsample_{i}", dtype=self.dtype_policy)
            conv.build(tuple(shape))
            shape[-1] = width
            self.convs.append(conv)
        self.output_conv = keras.layers.Conv2D(1, 3, padding="same", name="output", dtype=self.dtype_policy)
        self.output_conv.build(tuple(shape))
        self.built = True

    def call(self, inputs):
        x, images = inputs
        for conv in self.convs:
            h, w = x.shape[1], x.shape[2]
            if h is None or w is None:
                h, w = ops.shape(x)[1], ops.shape(x)[2]
            # GELU, not ReLU: a head whose units all died would predict one constant depth (a ReLU head did,
            # in a default training run), and nothing downstream of it has a residual path.
            x = ops.gelu(conv(ops.image.resize(x, (2 * h, 2 * w), interpolation="bilinear")))
        height, width = images.shape[1], images.shape[2]
        if height is None or width is None:
            height, width = ops.shape(images)[1], ops.shape(images)[2]
        x = ops.image.resize(x, (height, width), interpolation="bilinear")
        z = ops.cast(self.output_conv(x)[..., 0], "float32")
        low, high = math.log(self.min_depth), math.log(self.max_depth)
        log_depth = z + 0.5 * (low + high)
        # Clamped in the forward pass, straight-through in the backward pass: a prediction beyond the range
        # is still pulled back (a sigmoid bound saturates: its gradient is exactly 0 in float32 for z > ~17,
        # and a first run of train_depth.py stuck every pixel at max_depth).
        log_depth = log_depth + ops.stop_gradient(ops.clip(log_depth, low, high) - log_depth)
        return ops.exp(log_depth)

    def compute_output_spec(self, inputs):
        images = inputs[1]
        return keras.KerasTensor((images.shape[0], images.shape[1], images.shape[2]), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({"channels": self.channels, "num_upsamplings": self.num_upsamplings,
                       "min_depth": self.min_depth, "max_depth": self.max_depth})
        return config

"""`DenseLabelDecoder`: an FPN-style decoder from a CoSwin feature pyramid to per-pixel class logits."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="florence_keras")
class DenseLabelDecoder(keras.layers.Layer):
    """Fuses a feature pyramid top-down and upsamples to one logit vector per pixel of the image.

    Each level is layer-normalised (as `DepthDecoder` does: the raw stage outputs grow with depth) and projected
    to `channels` by a 1×1 conv; from the coarsest map down, the running map is resized bilinearly to the next
    finer level, the level's projection added, and the sum refined by Conv3×3 → BatchNorm → ReLU; one more such
    unit follows at the finest level. Then `num_upsamplings` times bilinear ×2 + Conv3×3 → BatchNorm → ReLU
    (`2·channels/3`, then halving, at least 8), a bilinear resize to the image's exact size where needed, and a
    1×1 conv to `num_classes` logits. In FlorenceVQA it names, per pixel, what the last stage pools away (an
    object's partly hidden outline: `scene.dense_label_map`'s occlusion code, docs/vqa.md, session 26). The
    batch-normalised units are the choice measured there: `DepthDecoder`'s residual units fitted the built-in
    training scenes better and held-out ones worse (per-object "partly hidden" 87.1% against 91.7%).

    Args:
        num_classes: int >= 2, the classes per pixel.
        channels: int > 0, the decoder's width. Defaults to 96.
        num_upsamplings: int >= 0, ×2 steps after the finest level (log2 of its stride). Defaults to 2.
        **kwargs: `keras.layers.Layer` arguments (the logits are float32).

    Call arguments:
        inputs: `[images, P2, P3, ...]`: the images `(B, H, W, C)` (only their size is read), then the pyramid from
            finest to coarsest.

    Returns:
        float32 logits `(B, H, W, num_classes)`.

    Example:
    >>> import numpy as np
    >>> decoder = DenseLabelDecoder(3, channels=16)
    >>> images = np.zeros((2, 32, 32, 3), "float32")
    >>> p2, p3 = np.zeros((2, 8, 8, 4), "float32"), np.zeros((2, 4, 4, 8), "float32")
    >>> tuple(decoder([images, p2, p3]).shape)
    (2, 32, 32, 3)
    """

    def __init__(self, num_classes, channels=96, num_upsamplings=2, **kwargs):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an int >= 2. Received: num_classes={num_classes!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"`channels` must be a positive int. Received: channels={channels!r}")
        if isinstance(num_upsamplings, bool) or not isinstance(num_upsamplings, int) or num_upsamplings < 0:
            raise ValueError(f"`num_upsamplings` must be an int >= 0. Received: num_upsamplings={num_upsamplings!r}")
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.channels = channels
        self.num_upsamplings = num_upsamplings

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"DenseLabelDecoder needs [images, P2, ...]: at least one pyramid level. Received: "
                             f"{len(input_shape)} input(s)")
        levels = list(input_shape[1:])
        policy = dict(dtype=self.dtype_policy)
        self.level_norms, self.lateral_convs = [], []
        for index, shape in enumerate(levels):
            norm = keras.layers.LayerNormalization(epsilon=1e-5, name=f"norm_p{index + 2}", **policy)
            lateral = keras.layers.Conv2D(self.channels, 1, name=f"lateral_p{index + 2}", **policy)
            norm.build(shape)
            lateral.build(shape)
            self.level_norms.append(norm)
            self.lateral_convs.append(lateral)
        shape = list(levels[0][:-1]) + [self.channels]
        # One refining unit after each finer level joins, one more at the finest, then one per x2 upsampling.
        widths = [self.channels] * len(levels)
        width = self.channels * 2 // 3
        for _ in range(self.num_upsamplings):
            widths.append(max(width, 8))
            width //= 2
        self.refine_convs, self.refine_norms = [], []
        for index, width in enumerate(widths):
            conv = keras.layers.Conv2D(width, 3, padding="same", name=f"refine_{index}", **policy)
            norm = keras.layers.BatchNormalization(name=f"refine_{index}_norm", **policy)
            conv.build(tuple(shape))
            shape[-1] = width
            norm.build(tuple(shape))
            self.refine_convs.append(conv)
            self.refine_norms.append(norm)
        self.logits = keras.layers.Conv2D(self.num_classes, 1, name="logits", dtype="float32")
        self.logits.build(tuple(shape))
        self.built = True

    def _refine(self, index, x, training):
        return ops.relu(self.refine_norms[index](self.refine_convs[index](x), training=training))

    def call(self, inputs, training=None):
        images = inputs[0]
        projected = [lateral(norm(level)) for norm, lateral, level in zip(self.level_norms, self.lateral_convs,
                                                                          inputs[1:])]
        x = projected[-1]
        unit = 0
        for lateral in reversed(projected[:-1]):
            x = self._refine(unit, _resize_like(x, lateral) + lateral, training)
            unit += 1
        x = self._refine(unit, x, training)
        for unit in range(unit + 1, len(self.refine_convs)):
            height, width = _size(x)
            x = self._refine(unit, ops.image.resize(x, (2 * height, 2 * width), interpolation="bilinear"), training)
        x = _resize_like(x, images)
        return ops.cast(self.logits(x), "float32")  # (under a mixed policy the outer autocast reaches it)

    def compute_output_spec(self, inputs, training=None):
        images = inputs[0]
        return keras.KerasTensor((images.shape[0], images.shape[1], images.shape[2], self.num_classes),
                                 dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "channels": self.channels,
                       "num_upsamplings": self.num_upsamplings})
        return config


def _size(x):
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        height, width = ops.shape(x)[1], ops.shape(x)[2]
    return height, width


def _resize_like(x, reference):
    """`x` resized bilinearly to `reference`'s height and width (unchanged when they already match)."""
    if (x.shape[1], x.shape[2]) == (reference.shape[1], reference.shape[2]) and x.shape[1] is not None:
        return x
    return ops.image.resize(x, _size(reference), interpolation="bilinear")

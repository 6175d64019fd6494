"""Video CoSwin: CoSwin with 3-D token embeddings and 3-D shifted windows (Florence's time axis)."""

import keras
from keras_hub.models import Backbone

from florence_keras.layers.conv_token_embedding import ConvTokenEmbedding
from florence_keras.layers.patch_merging import PatchMerging
from florence_keras.layers.swin_transformer_block import SwinTransformerBlock
from florence_keras.models.coswin_backbone import check_stage_arguments
from florence_keras.models.coswin_backbone import coswin_config
from florence_keras.models.coswin_backbone import coswin_features
from florence_keras.models.coswin_backbone import drop_path_rates


def _triple(value, name):
    if isinstance(value, int):
        return (value,) * 3
    value = tuple(int(v) for v in value)
    if len(value) != 3 or min(value) < 1:
        raise ValueError(f"`{name}` must be a positive int or 3 positive ints. Received: {name}={value}")
    return value


def stage_windows(window_size, num_stages):
    """Per-stage 3-D windows from an int, one `(t, h, w)` or a list of them (one per stage)."""
    if isinstance(window_size, int) or (
            len(window_size) == 3 and all(isinstance(v, int) for v in window_size)):
        return [_triple(window_size, "window_size")] * num_stages
    windows = [_triple(w, "window_size") for w in window_size]
    if len(windows) != num_stages:
        raise ValueError(f"`window_size` needs one (t, h, w) per stage ({num_stages}). "
                         f"Received: window_size={window_size}")
    return windows


@keras.saving.register_keras_serializable(package="florence_keras")
class VideoCoSwinBackbone(Backbone):
    """The CoSwin encoder made 3-D for video clips, a functional Keras backbone.

    Every 2-D piece of `CoSwinBackbone` becomes 3-D (the layers are the same classes, given 3-D shapes):
    the conv token embedding is a `(t, 7, 7)` convolution with stride `(t_s, 4, 4)` (`patch_size`) and the
    embeddings between stages `(t, 3, 3)` with stride `(1, 2, 2)` (`temporal_kernel = (stem t, stage t)`);
    window attention runs over 3-D windows `(Wt, Wh, Ww)` — one per stage — with a relative position bias over
    `(2Wt−1)(2Wh−1)(2Ww−1)` offsets, and every other block shifts them by half a window on each axis (with
    Swin's masks). Any number of frames and frame size works: each stage pads its map to the window, and a map
    no larger than the window on an axis uses a smaller window and no shift on that axis (Video Swin's rule).

    With `patch_embedding="linear"` it is Video Swin (Liu et al., 2021): non-overlapping `patch_size` patches
    (zero-padded at the end) + LayerNorm, and 2x2 spatial patch merging that keeps time; then it equals
    keras-cv 0.9's `VideoSwinBackbone` (`florence_keras.converters.keras_cv_video_swin`).

    Outputs a dict: `"feature_map"` `(B, t, h, w, C)` — the last stage after the final LayerNorm — and
    `"pooled_output"` `(B, C)`, its average over time and space. `pyramid_outputs` maps `"P2".."P5"` to the
    stages' outputs.

    `from_image_backbone` inflates a trained `CoSwinBackbone` (or a FlorenceCLIP's image encoder) into this one.

    Args:
        embed_dim: int, channels of the first stage (doubled each stage).
        depths: list of ints, blocks per stage.
        num_heads: list of ints, heads per stage.
        window_size: int, `(t, h, w)` or one `(t, h, w)` per stage.
        mlp_ratio: float. Defaults to `4.0`.
        qkv_bias: bool. Defaults to `True`.
        dropout: float. Defaults to `0.0`.
        attention_dropout: float. Defaults to `0.0`.
        drop_path_rate: float, stochastic depth of the last block (linear from 0). Defaults to `0.1`.
        patch_embedding: `"conv"` (CoSwin) or `"linear"` (Video Swin).
        patch_size: int or `(t_s, s, s)`, the stem's stride. Defaults to `(2, 4, 4)`.
        temporal_kernel: int or `(stem, stages)`: the temporal kernel of the conv embeddings (`"conv"` only).
            Defaults to `3`.
        video_shape: `(frames, height, width, channels)`. Defaults to `(8, 224, 224, 3)`.
        layer_norm_epsilon: float. Defaults to `1e-5`.
        dtype: optional dtype policy.

    Example:
    >>> import numpy as np
    >>> backbone = VideoCoSwinBackbone(
    ...     embed_dim=8, depths=[1, 2], num_heads=[1, 2], window_size=[(2, 2, 2), (2, 2, 2)],
    ...     video_shape=(5, 30, 30, 3))
    >>> out = backbone(np.zeros((1, 5, 30, 30, 3), "float32"))
    >>> tuple(out["pooled_output"].shape), tuple(out["feature_map"].shape)
    ((1, 16), (1, 3, 4, 4, 16))
    """

    def __init__(
        self,
        embed_dim,
        depths,
        num_heads,
        window_size,
        mlp_ratio=4.0,
        qkv_bias=True,
        dropout=0.0,
        attention_dropout=0.0,
        drop_path_rate=0.1,
        patch_embedding="conv",
        patch_size=(2, 4, 4),
        temporal_kernel=3,
        video_shape=(8, 224, 224, 3),
        layer_norm_epsilon=1e-5,
        dtype=None,
        **kwargs,
    ):
        depths, num_heads = check_stage_arguments(embed_dim, depths, num_heads, patch_embedding)
        video_shape = tuple(video_shape)
        if len(video_shape) != 4 or any(d is None or d < 1 for d in video_shape):
            raise ValueError("`video_shape` must be a static (frames, height, width, channels). "
                             f"Received: video_shape={video_shape}")
        patch = _triple(patch_size, "patch_size")
        if isinstance(temporal_kernel, int):
            kernels_t = (temporal_kernel, temporal_kernel)
        else:
            kernels_t = tuple(int(k) for k in temporal_kernel)
        if len(kernels_t) != 2 or min(kernels_t) < 1:
            raise ValueError("`temporal_kernel` must be a positive int or (stem, stages). "
                             f"Received: temporal_kernel={temporal_kernel}")
        windows = stage_windows(window_size, len(depths))

        # === Layers ===
        rates = drop_path_rates(drop_path_rate, depths)
        if patch_embedding == "conv":
            self.stem = ConvTokenEmbedding(
                embed_dim, kernel_size=(kernels_t[0], 7, 7), strides=patch, padding="symmetric",
                layer_norm_epsilon=layer_norm_epsilon, dtype=dtype, name="stem")
        else:
            self.stem = ConvTokenEmbedding(
                embed_dim, kernel_size=patch, strides=patch, padding="end",
                layer_norm_epsilon=layer_norm_epsilon, dtype=dtype, name="stem")
        self.downsamplers, self.stages = [], []
        block_index = 0
        for stage, (depth, heads, window) in enumerate(zip(depths, num_heads, windows)):
            dim = embed_dim * 2**stage
            if stage > 0:
                if patch_embedding == "conv":
                    down = ConvTokenEmbedding(
                        dim, kernel_size=(kernels_t[1], 3, 3), strides=(1, 2, 2), padding="symmetric",
                        layer_norm_epsilon=layer_norm_epsilon, dtype=dtype, name=f"stage_{stage}_embedding")
                else:
                    down = PatchMerging(dim, layer_norm_epsilon=layer_norm_epsilon, dtype=dtype,
                                        name=f"stage_{stage}_embedding")
                self.downsamplers.append(down)
            blocks = []
            for i in range(depth):
                shift = tuple(w // 2 for w in window) if i % 2 else (0, 0, 0)
                blocks.append(SwinTransformerBlock(
                    dim, heads, window_size=window, shift_size=shift, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                    dropout=dropout, attention_dropout=attention_dropout, drop_path=rates[block_index],
                    layer_norm_epsilon=layer_norm_epsilon, dtype=dtype, name=f"stage_{stage}_block_{i}"))
                block_index += 1
            self.stages.append(blocks)
        self.final_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype=dtype,
                                                          name="final_norm")
        self.pool = keras.layers.GlobalAveragePooling3D(dtype=dtype, name="pool")

        # === Functional model ===
        videos = keras.Input(shape=video_shape, name="videos")
        features = self.forward_features(videos)
        super().__init__(
            inputs=videos,
            outputs={"feature_map": features["feature_map"], "pooled_output": features["pooled_output"]},
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.embed_dim = embed_dim
        self.depths = depths
        self.num_heads = num_heads
        self.window_size = [list(w) for w in windows]
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.drop_path_rate = drop_path_rate
        self.patch_embedding = patch_embedding
        self.patch_size = patch
        self.temporal_kernel = kernels_t
        self.video_shape = video_shape
        self.layer_norm_epsilon = layer_norm_epsilon
        self.pyramid_outputs = features["pyramid"]
        self.output_dim = embed_dim * 2 ** (len(depths) - 1)

    def forward_features(self, videos, training=None):
        """Runs the encoder's layers on clips of any static `(frames, height, width)`.

        Returns:
            dict with `"feature_map"`, `"pooled_output"` and `"pyramid"` (`"P2".."P5"`).
        """
        return coswin_features(self, videos, training=training)

    @classmethod
    def from_image_backbone(cls, image_backbone, num_frames=8, temporal_kernel=3, temporal_stride=2,
                            window=None, inflation="mean", drop_path_rate=None, image_size=None, dtype=None):
        """Inflates a 2-D `CoSwinBackbone` (or a FlorenceCLIP / FlorenceBackbone's image encoder) into video.

        See `florence_keras.models.video_inflation.inflate_coswin` for the arguments and the weight rules.
        """
        from florence_keras.models import video_inflation  # local: the inflation module imports this one

        return video_inflation.inflate_coswin(
            image_backbone, num_frames=num_frames, temporal_kernel=temporal_kernel,
            temporal_stride=temporal_stride, window=window, inflation=inflation, drop_path_rate=drop_path_rate,
            image_size=image_size, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        config.update(coswin_config(self, ("temporal_kernel", "video_shape", "layer_norm_epsilon")))
        return config

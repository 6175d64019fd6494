"""CoSwin: Swin Transformer with convolutional token embeddings (Florence's image encoder)."""

import keras
from keras import ops
from keras_hub.models import Backbone

from florence_keras.layers.conv_token_embedding import ConvTokenEmbedding
from florence_keras.layers.patch_merging import PatchMerging
from florence_keras.layers.swin_transformer_block import SwinTransformerBlock

PATCH_EMBEDDINGS = ("conv", "linear")

# The constructor arguments `CoSwinBackbone` and `VideoCoSwinBackbone` share, in their `get_config` order.
SHARED_CONFIG = ("embed_dim", "depths", "num_heads", "window_size", "mlp_ratio", "qkv_bias", "dropout",
                 "attention_dropout", "drop_path_rate", "patch_embedding", "patch_size")


def check_stage_arguments(embed_dim, depths, num_heads, patch_embedding):
    """Checks the stage arguments shared by the 2-D and 3-D CoSwin; returns `depths`, `num_heads` as lists."""
    depths, num_heads = list(depths), list(num_heads)
    if patch_embedding not in PATCH_EMBEDDINGS:
        raise ValueError(
            f"`patch_embedding` must be one of {PATCH_EMBEDDINGS}. "
            f"Received: patch_embedding={patch_embedding!r}"
        )
    if not depths or len(depths) != len(num_heads) or min(depths) < 1:
        raise ValueError(
            "`depths` and `num_heads` need one positive entry per stage. "
            f"Received: depths={depths}, num_heads={num_heads}"
        )
    for stage, heads in enumerate(num_heads):
        if (embed_dim * 2**stage) % heads:
            raise ValueError(
                f"Stage {stage} width {embed_dim * 2**stage} is not divisible by "
                f"num_heads[{stage}]={heads}."
            )
    return depths, num_heads


def drop_path_rates(drop_path_rate, depths):
    """Stochastic depth per block over all stages: linear from 0 to `drop_path_rate` (the last block)."""
    total_blocks = sum(depths)
    return [drop_path_rate * i / max(total_blocks - 1, 1) for i in range(total_blocks)]


def coswin_features(backbone, inputs, training=None):
    """The CoSwin forward pass, shared by `CoSwinBackbone` (2-D) and `VideoCoSwinBackbone` (3-D).

    The stem, then per stage its downsampling (after the first) and blocks, then the final LayerNorm and the
    global average pooling. Both backbones build the same layers (`stem`, `downsamplers`, `stages`,
    `final_norm`, `pool`), given 2-D or 3-D shapes.

    Args:
        backbone: a `CoSwinBackbone` or `VideoCoSwinBackbone` (its layers are used, not its functional graph).
        inputs: images `(B, H, W, C)` or clips `(B, T, H, W, C)` of any static size.
        training: passed to the blocks (dropout, stochastic depth).

    Returns:
        dict with `"feature_map"` (the last stage after the final norm), `"pooled_output"` (its global average)
        and `"pyramid"` (`"P2".."P5"`: each stage's output).
    """
    x = backbone.stem(inputs)
    pyramid = {}
    for stage, blocks in enumerate(backbone.stages):
        if stage > 0:
            x = backbone.downsamplers[stage - 1](x)
        for block in blocks:
            x = block(x, training=training)
        pyramid[f"P{stage + 2}"] = x
    feature_map = backbone.final_norm(x)
    return {"feature_map": feature_map, "pooled_output": backbone.pool(feature_map), "pyramid": pyramid}


def coswin_config(backbone, own_names):
    """`get_config` entries of a CoSwin backbone: the `SHARED_CONFIG` arguments, then `own_names`, in order."""
    return {name: getattr(backbone, name) for name in SHARED_CONFIG + tuple(own_names)}


@keras.saving.register_keras_serializable(package="florence_keras")
class CoSwinBackbone(Backbone):
    """The CoSwin image encoder of Florence, a functional Keras backbone.

    A Swin Transformer (window attention, shifted windows, relative position
    bias, stochastic depth) whose patch embedding and patch merging are CvT-style
    convolutional token embeddings (`patch_embedding="conv"`: a 7x7/4 conv stem
    and 3x3/2 convs between stages, each followed by LayerNorm). With
    `patch_embedding="linear"` it is exactly Swin (4x4 patchify + LayerNorm,
    2x2 linear patch merging), so plain Swin checkpoints load bit-for-bit.

    Any static `image_shape` works: every stage pads its map up to the window
    (as Swin does) and every downsampling rounds up, so sizes need not be
    multiples of `32 * window_size`. The weights do not depend on the image
    size: a backbone built for another size loads the same weights.

    Outputs a dict: `"feature_map"` `(B, h, w, C)` — the last stage after the
    final LayerNorm — and `"pooled_output"` `(B, C)`, its global average (the
    image feature). `backbone.pyramid_outputs` maps `"P2".."P5"` (strides 4 to 32)
    to each stage's output map, for feature-pyramid adapters:
    `keras.Model(backbone.inputs, backbone.pyramid_outputs)`.

    Args:
        embed_dim: int, channels of the first stage (doubled each stage).
        depths: list of ints, blocks per stage.
        num_heads: list of ints, heads per stage.
        window_size: int, the attention window (square).
        mlp_ratio: float. Defaults to `4.0`.
        qkv_bias: bool. Defaults to `True`.
        dropout: float. Defaults to `0.0`.
        attention_dropout: float. Defaults to `0.0`.
        drop_path_rate: float, stochastic depth rate of the last block,
            increasing linearly from 0 over all blocks. Defaults to `0.1`.
        patch_embedding: `"conv"` (CoSwin) or `"linear"` (Swin).
        patch_size: int, stride of the stem (4).
        image_shape: tuple `(height, width, channels)`. Defaults to `(224, 224, 3)`.
        layer_norm_epsilon: float. Defaults to `1e-5`.
        dtype: optional dtype policy.

    Example:
    >>> import numpy as np
    >>> backbone = CoSwinBackbone(
    ...     embed_dim=8, depths=[1, 2], num_heads=[1, 2], window_size=2,
    ...     image_shape=(30, 30, 3))
    >>> out = backbone(np.zeros((1, 30, 30, 3), "float32"))
    >>> tuple(out["pooled_output"].shape), tuple(out["feature_map"].shape)
    ((1, 16), (1, 4, 4, 16))
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
        patch_size=4,
        image_shape=(224, 224, 3),
        layer_norm_epsilon=1e-5,
        dtype=None,
        **kwargs,
    ):
        depths, num_heads = check_stage_arguments(embed_dim, depths, num_heads, patch_embedding)
        image_shape = tuple(image_shape)
        if len(image_shape) != 3 or any(d is None or d < 1 for d in image_shape):
            raise ValueError(
                "`image_shape` must be a static (height, width, channels). "
                f"Received: image_shape={image_shape}"
            )

        # === Layers ===
        rates = drop_path_rates(drop_path_rate, depths)
        if patch_embedding == "conv":
            stem = ConvTokenEmbedding(
                embed_dim, kernel_size=7, strides=patch_size, padding="symmetric",
                layer_norm_epsilon=layer_norm_epsilon, dtype=dtype, name="stem",
            )
        else:
            stem = ConvTokenEmbedding(
                embed_dim, kernel_size=patch_size, strides=patch_size, padding="end",
                layer_norm_epsilon=layer_norm_epsilon, dtype=dtype, name="stem",
            )
        self.stem = stem
        self.downsamplers = []
        self.stages = []
        block_index = 0
        for stage, (depth, heads) in enumerate(zip(depths, num_heads)):
            dim = embed_dim * 2**stage
            if stage > 0:
                if patch_embedding == "conv":
                    down = ConvTokenEmbedding(
                        dim, kernel_size=3, strides=2, padding="symmetric",
                        layer_norm_epsilon=layer_norm_epsilon, dtype=dtype,
                        name=f"stage_{stage}_embedding",
                    )
                else:
                    down = PatchMerging(
                        dim, layer_norm_epsilon=layer_norm_epsilon, dtype=dtype,
                        name=f"stage_{stage}_embedding",
                    )
                self.downsamplers.append(down)
            blocks = []
            for i in range(depth):
                shift = window_size // 2 if i % 2 else 0
                blocks.append(
                    SwinTransformerBlock(
                        dim, heads, window_size=(window_size, window_size),
                        shift_size=(shift, shift), mlp_ratio=mlp_ratio,
                        qkv_bias=qkv_bias, dropout=dropout,
                        attention_dropout=attention_dropout,
                        drop_path=rates[block_index],
                        layer_norm_epsilon=layer_norm_epsilon, dtype=dtype,
                        name=f"stage_{stage}_block_{i}",
                    )
                )
                block_index += 1
            self.stages.append(blocks)
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm"
        )
        self.pool = keras.layers.GlobalAveragePooling2D(dtype=dtype, name="pool")

        # === Functional model ===
        images = keras.Input(shape=image_shape, name="images")
        features = self.forward_features(images)
        pyramid = features["pyramid"]
        feature_map, pooled = features["feature_map"], features["pooled_output"]
        super().__init__(
            inputs=images,
            outputs={"feature_map": feature_map, "pooled_output": pooled},
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.embed_dim = embed_dim
        self.depths = depths
        self.num_heads = num_heads
        self.window_size = window_size
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.drop_path_rate = drop_path_rate
        self.patch_embedding = patch_embedding
        self.patch_size = patch_size
        self.image_shape = image_shape
        self.layer_norm_epsilon = layer_norm_epsilon
        self.pyramid_outputs = pyramid
        self.output_dim = embed_dim * 2 ** (len(depths) - 1)

    def forward_features(self, images, training=None):
        """Runs the encoder's layers on `images` of any static size.

        The functional model is built for `image_shape`; this method applies the
        same layers (same weights) to another resolution, e.g. Florence's
        384-pixel stage after 224-pixel training, or detection inputs.

        Returns:
            dict with `"feature_map"`, `"pooled_output"` and `"pyramid"`
            (`"P2".."P5"` stage outputs).
        """
        return coswin_features(self, images, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(coswin_config(self, ("image_shape", "layer_norm_epsilon")))
        return config

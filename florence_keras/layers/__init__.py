"""Layers of florence_keras: window attention blocks and token embeddings."""

from florence_keras.layers.conv_token_embedding import ConvTokenEmbedding
from florence_keras.layers.depth_decoder import DepthDecoder
from florence_keras.layers.depth_fusion_block import DepthFusionBlock
from florence_keras.layers.depth_upsampling_head import DepthUpsamplingHead
from florence_keras.layers.drop_path import DropPath
from florence_keras.layers.patch_merging import PatchMerging
from florence_keras.layers.swin_transformer_block import SwinTransformerBlock
from florence_keras.layers.window_attention import WindowAttention

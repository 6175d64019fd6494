"""`CoAttentionLayer`: METER's two-stream co-attention layer (a `CrossAttentionBlock` per stream)."""

import keras

from florence_keras.layers.cross_attention_block import CrossAttentionBlock


@keras.saving.register_keras_serializable(package="florence_keras")
class CoAttentionLayer(keras.layers.Layer):
    """`text' = TextBlock(text, image); image' = ImageBlock(image, text)` — both from the layer's inputs (METER's
    `x1 = text_layer(x, y); y1 = image_layer(y, x)`), each block self-attention → cross-attention (queries from its
    own stream, keys/values from the other) → FFN, post-LN.

    Args:
        hidden_dim, num_heads, intermediate_dim, dropout, layer_norm_epsilon: see `CrossAttentionBlock`.
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        text: `(B, Lt, hidden_dim)`; image: `(B, Li, hidden_dim)`; text_mask / image_mask: optional `(B, L)`
        validity (1 = real token).

        return_attention: bool; also return the text block's cross-attention probabilities (text queries over
            image tokens) `(B, num_heads, Lt, Li)`.

    Returns:
        `(text', image')`, the shapes of the inputs (with `return_attention`, `(text', image', attention)`).

    Example:
    >>> import numpy as np
    >>> layer = CoAttentionLayer(8, 2)
    >>> text, image = layer(np.zeros((1, 3, 8), "float32"), np.zeros((1, 5, 8), "float32"))
    >>> tuple(text.shape), tuple(image.shape)
    ((1, 3, 8), (1, 5, 8))
    """

    def __init__(self, hidden_dim, num_heads, intermediate_dim=None, dropout=0.1, layer_norm_epsilon=1e-12,
                 **kwargs):
        super().__init__(**kwargs)
        block = dict(hidden_dim=hidden_dim, num_heads=num_heads, intermediate_dim=intermediate_dim, dropout=dropout,
                     layer_norm_epsilon=layer_norm_epsilon, dtype=self.dtype_policy)
        self.text_block = CrossAttentionBlock(name="text_block", **block)
        self.image_block = CrossAttentionBlock(name="image_block", **block)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = self.text_block.intermediate_dim
        self.dropout = self.text_block.dropout
        self.layer_norm_epsilon = self.text_block.layer_norm_epsilon

    def build(self, text_shape, image_shape=None, text_mask_shape=None, image_mask_shape=None):
        image_shape = text_shape if image_shape is None else image_shape
        self.text_block.build(text_shape, image_shape)
        self.image_block.build(image_shape, text_shape)
        self.built = True

    def call(self, text, image, text_mask=None, image_mask=None, training=None, return_attention=False):
        new_text, attention = self.text_block(text, image, x_mask=text_mask, context_mask=image_mask,
                                              training=training, return_attention=True)
        new_image = self.image_block(image, text, x_mask=image_mask, context_mask=text_mask, training=training)
        return (new_text, new_image, attention) if return_attention else (new_text, new_image)

    def compute_output_shape(self, text_shape, image_shape=None, *args, **kwargs):
        return tuple(text_shape), tuple(text_shape if image_shape is None else image_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim, "num_heads": self.num_heads,
                       "intermediate_dim": self.intermediate_dim, "dropout": self.dropout,
                       "layer_norm_epsilon": self.layer_norm_epsilon})
        return config

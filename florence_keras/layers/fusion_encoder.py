"""`FusionEncoder`: METER's fusion module — input projections, token types, M co-attention layers, two poolers."""

import keras
from keras import ops

from florence_keras.layers.co_attention_layer import CoAttentionLayer


@keras.saving.register_keras_serializable(package="florence_keras")
class FusionEncoder(keras.layers.Layer):
    """Fuses text tokens and image tokens (METER, Dou et al. 2022).

        text  = Dense_t(text_features)  + type_embedding[0]
        image = Dense_i(image_features) + type_embedding[1]
        (text, image) = CoAttentionLayer_m(text, image)  for m = 1..num_layers
        pooled = concat(tanh(W_t · text[:, 0]), tanh(W_i · image[:, 0]))      (B, 2 · hidden_dim)

    The first token of each stream is its summary (the text's start token, the image's pooled token); padded text
    tokens (mask 0) are invisible to every query, so padding changes no output at a real position.

    Args:
        hidden_dim: int. Defaults to 768 (METER).
        num_layers: int, co-attention layers per stream. Defaults to 6.
        num_heads: int. Defaults to 12.
        intermediate_dim: int, FFN width. Defaults to `4 * hidden_dim`.
        dropout: float. Defaults to 0.1.
        layer_norm_epsilon: float. Defaults to 1e-12.
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        text_features: `(B, Lt, Dt)`; image_features: `(B, Li, Di)`; text_mask / image_mask: optional `(B, L)`
        validity (1 = real token).
        return_attention: bool; also return `"text_to_image_attention"`, a list (one per layer) of the text
            stream's cross-attention probabilities `(B, num_heads, Lt, Li)` (where each text token looks in the
            image; an attention target can be put on them in training).

    Returns:
        dict: `"text_sequence"` `(B, Lt, hidden_dim)`, `"image_sequence"` `(B, Li, hidden_dim)`,
        `"pooled_output"` `(B, 2 · hidden_dim)` (and `"text_to_image_attention"` when asked).

    Example:
    >>> import numpy as np
    >>> fusion = FusionEncoder(hidden_dim=8, num_layers=1, num_heads=2)
    >>> out = fusion(np.zeros((2, 4, 6), "float32"), np.zeros((2, 5, 10), "float32"))
    >>> tuple(out["pooled_output"].shape)
    (2, 16)
    """

    def __init__(self, hidden_dim=768, num_layers=6, num_heads=12, intermediate_dim=None, dropout=0.1,
                 layer_norm_epsilon=1e-12, **kwargs):
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"`num_layers` must be a positive int. Received: num_layers={num_layers!r}")
        super().__init__(**kwargs)
        policy = dict(dtype=self.dtype_policy)
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.text_projection = keras.layers.Dense(hidden_dim, kernel_initializer=init, name="text_projection",
                                                  **policy)
        self.image_projection = keras.layers.Dense(hidden_dim, kernel_initializer=init, name="image_projection",
                                                   **policy)
        self.fusion_layers = [
            CoAttentionLayer(hidden_dim, num_heads, intermediate_dim, dropout, layer_norm_epsilon,
                             name=f"co_attention_{i}", **policy)
            for i in range(num_layers)
        ]
        self.text_pooler = keras.layers.Dense(hidden_dim, activation="tanh", kernel_initializer=init,
                                              name="text_pooler", **policy)
        self.image_pooler = keras.layers.Dense(hidden_dim, activation="tanh", kernel_initializer=init,
                                               name="image_pooler", **policy)
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = self.fusion_layers[0].intermediate_dim
        self.dropout = float(dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)

    def build(self, text_features_shape, image_features_shape, text_mask_shape=None, image_mask_shape=None):
        text_shape, image_shape = text_features_shape, image_features_shape
        self.text_projection.build(text_shape)
        self.image_projection.build(image_shape)
        self.token_type_embedding = self.add_weight(
            shape=(2, self.hidden_dim), initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="token_type_embedding")
        text_hidden = tuple(text_shape[:-1]) + (self.hidden_dim,)
        image_hidden = tuple(image_shape[:-1]) + (self.hidden_dim,)
        for layer in self.fusion_layers:
            layer.build(text_hidden, image_hidden)
        self.text_pooler.build((text_shape[0], self.hidden_dim))
        self.image_pooler.build((image_shape[0], self.hidden_dim))
        self.built = True

    def call(self, text_features, image_features, text_mask=None, image_mask=None, training=None,
             return_attention=False):
        types = ops.cast(self.token_type_embedding, self.compute_dtype)
        text = self.text_projection(text_features) + types[0]
        image = self.image_projection(image_features) + types[1]
        attention = []
        for layer in self.fusion_layers:
            text, image, weights = layer(text, image, text_mask=text_mask, image_mask=image_mask,
                                         training=training, return_attention=True)
            attention.append(weights)
        pooled = ops.concatenate([self.text_pooler(text[:, 0]), self.image_pooler(image[:, 0])], axis=-1)
        outputs = {"text_sequence": text, "image_sequence": image, "pooled_output": pooled}
        if return_attention:
            outputs["text_to_image_attention"] = attention
        return outputs

    def compute_output_shape(self, text_features_shape, image_features_shape, *args, **kwargs):
        text_shape, image_shape = text_features_shape, image_features_shape
        return {"text_sequence": tuple(text_shape[:-1]) + (self.hidden_dim,),
                "image_sequence": tuple(image_shape[:-1]) + (self.hidden_dim,),
                "pooled_output": (text_shape[0], 2 * self.hidden_dim)}

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim, "num_layers": self.num_layers, "num_heads": self.num_heads,
                       "intermediate_dim": self.intermediate_dim, "dropout": self.dropout,
                       "layer_norm_epsilon": self.layer_norm_epsilon})
        return config

"""CaptionDecoder: token + position embeddings, a stack of `CaptionDecoderLayer`s and next-token logits."""

import keras
from keras import ops

from florence_keras.layers.caption_decoder_layer import CaptionDecoderLayer


@keras.saving.register_keras_serializable(package="florence_keras")
class CaptionDecoder(keras.layers.Layer):
    """An autoregressive caption decoder attending to image tokens (ours).

    Image tokens `(B, N, C)` are projected to `hidden_dim` and get a learned position embedding (N =
    `num_image_tokens`); caption ids `(B, T)` get token + learned position embeddings (T <= `max_length`); then
    `num_layers` `CaptionDecoderLayer`s, a final LayerNorm, and logits over the vocabulary through the token
    embedding matrix (tied) plus a bias.

    Args:
        vocabulary_size, max_length, num_image_tokens: ints.
        hidden_dim, num_layers, num_heads, intermediate_dim: the decoder's size.
        dropout: float.
        layer_norm_epsilon: float.
        **kwargs: `keras.layers.Layer` arguments.

    Call args:
        token_ids: int `(B, T)`.
        image_tokens: float `(B, N, C)`.
        padding_mask: `(B, T)` (1 = a real token) or None.

    Returns:
        float32 logits `(B, T, vocabulary_size)`: at position t, the distribution of token t + 1.
    """

    def __init__(self, vocabulary_size, max_length, num_image_tokens, hidden_dim=128, num_layers=2, num_heads=4,
                 intermediate_dim=512, dropout=0.0, layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.max_length = max_length
        self.num_image_tokens = num_image_tokens
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.token_embedding = keras.layers.Embedding(vocabulary_size, hidden_dim, embeddings_initializer=init,
                                                      dtype=self.dtype_policy, name="token_embedding")
        self.position_embedding = keras.layers.Embedding(max_length, hidden_dim, embeddings_initializer=init,
                                                         dtype=self.dtype_policy, name="position_embedding")
        self.image_projection = keras.layers.Dense(hidden_dim, dtype=self.dtype_policy, name="image_projection")
        self.image_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype=self.dtype_policy,
                                                          name="image_norm")
        self.image_position_embedding = keras.layers.Embedding(
            num_image_tokens, hidden_dim, embeddings_initializer=init, dtype=self.dtype_policy,
            name="image_position_embedding")
        self.decoder_layers = [
            CaptionDecoderLayer(hidden_dim, num_heads, intermediate_dim, dropout=dropout,
                                layer_norm_epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name=f"layer_{i}")
            for i in range(num_layers)]
        self.final_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype=self.dtype_policy,
                                                          name="final_norm")

    def build(self, token_ids_shape, image_tokens_shape=None, padding_mask_shape=None):
        batch = token_ids_shape[0]
        states = (batch, token_ids_shape[1], self.hidden_dim)
        image_states = (batch, self.num_image_tokens, self.hidden_dim)
        self.token_embedding.build(token_ids_shape)
        self.position_embedding.build((None,))
        self.image_position_embedding.build((None,))
        channels = self.hidden_dim if image_tokens_shape is None else image_tokens_shape[-1]
        self.image_projection.build((batch, self.num_image_tokens, channels))
        self.image_norm.build(image_states)
        for layer in self.decoder_layers:
            layer.build(states, image_states)
        self.final_norm.build(states)
        self.output_bias = self.add_weight(shape=(self.vocabulary_size,), initializer="zeros", name="output_bias")
        self.built = True

    def project_image_tokens(self, image_tokens):
        """`(B, N, C)` -> `(B, N, hidden_dim)`: projection, LayerNorm, image position embedding."""
        positions = self.image_position_embedding(ops.arange(self.num_image_tokens))
        return self.image_norm(self.image_projection(image_tokens)) + positions[None]

    def decode(self, token_ids, image_states, padding_mask=None, training=None):
        """Logits from already projected image states (`project_image_tokens`), for generation."""
        length = ops.shape(token_ids)[1]
        x = self.token_embedding(token_ids) + self.position_embedding(ops.arange(length))[None]
        for layer in self.decoder_layers:
            x = layer(x, image_states, padding_mask=padding_mask, training=training)
        x = self.final_norm(x)
        logits = ops.matmul(x, ops.transpose(self.token_embedding.embeddings)) + self.output_bias
        return ops.cast(logits, "float32")

    def call(self, token_ids, image_tokens, padding_mask=None, training=None):
        return self.decode(token_ids, self.project_image_tokens(image_tokens), padding_mask, training)

    def compute_output_shape(self, token_ids_shape, *args, **kwargs):
        return tuple(token_ids_shape) + (self.vocabulary_size,)

    def get_config(self):
        config = super().get_config()
        config.update({name: getattr(self, name) for name in (
            "vocabulary_size", "max_length", "num_image_tokens", "hidden_dim", "num_layers", "num_heads",
            "intermediate_dim", "dropout", "layer_norm_epsilon")})
        return config

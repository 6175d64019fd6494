"""CaptionDecoderLayer: one transformer decoder layer (causal self-attention, cross-attention, FFN), pre-LN."""

import keras
from keras import ops


def multi_head_attention(query, key, value, num_heads, mask=None):
    """Scaled dot-product attention over `num_heads` heads of already projected `(B, T, D)` tensors.

    Args:
        query: `(B, Tq, D)`; key, value: `(B, Tk, D)`.
        num_heads: int dividing D.
        mask: bool `(B, Tq, Tk)` (True = may attend) or None.

    Returns:
        `(B, Tq, D)`, the heads concatenated.
    """
    batch, length = ops.shape(query)[0], ops.shape(query)[1]
    dim = query.shape[-1]
    head_dim = dim // num_heads

    def heads(x):
        return ops.transpose(ops.reshape(x, (batch, -1, num_heads, head_dim)), (0, 2, 1, 3))

    scores = ops.matmul(heads(query), ops.transpose(heads(key), (0, 1, 3, 2))) / ops.sqrt(
        ops.cast(head_dim, query.dtype))
    if mask is not None:
        scores = ops.where(mask[:, None], scores, ops.cast(-1e9, scores.dtype))
    weights = ops.softmax(scores, axis=-1)
    out = ops.matmul(weights, heads(value))
    return ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (batch, length, dim))


@keras.saving.register_keras_serializable(package="florence_keras")
class CaptionDecoderLayer(keras.layers.Layer):
    """A pre-LN transformer decoder layer for captioning (ours; the layout of GPT-2 / the Transformer's decoder).

    `x = x + SelfAttn(LN(x))` (causal: position i sees positions <= i, and no padded position)
    `x = x + CrossAttn(LN(x), image_tokens)` (every image token)
    `x = x + W2 GELU(W1 LN(x))`

    Args:
        hidden_dim: int, the token width D.
        num_heads: int dividing `hidden_dim`.
        intermediate_dim: int, the FFN's hidden width.
        dropout: float, dropout after each residual branch (training only).
        layer_norm_epsilon: float.
        **kwargs: `keras.layers.Layer` arguments.

    Call args:
        x: float `(B, T, D)` token states.
        image_tokens: float `(B, N, D)` (already projected to D).
        padding_mask: bool/int `(B, T)` (True/1 = a real token) or None.
    """

    def __init__(self, hidden_dim, num_heads, intermediate_dim, dropout=0.0, layer_norm_epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        if hidden_dim % num_heads:
            raise ValueError(f"`hidden_dim` ({hidden_dim}) must be divisible by `num_heads` ({num_heads}).")
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon

        def dense(units, name):
            return keras.layers.Dense(units, dtype=self.dtype_policy, name=name)

        def norm(name):
            return keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name=name)

        self.self_norm = norm("self_attention_norm")
        self.self_qkv = [dense(hidden_dim, f"self_{n}") for n in ("query", "key", "value")]
        self.self_output = dense(hidden_dim, "self_output")
        self.cross_norm = norm("cross_attention_norm")
        self.cross_qkv = [dense(hidden_dim, f"cross_{n}") for n in ("query", "key", "value")]
        self.cross_output = dense(hidden_dim, "cross_output")
        self.ffn_norm = norm("ffn_norm")
        self.ffn_in = dense(intermediate_dim, "ffn_intermediate")
        self.ffn_out = dense(hidden_dim, "ffn_output")
        self.drop = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, x_shape, image_tokens_shape=None, padding_mask_shape=None):
        token_shape = tuple(x_shape)
        image_shape = token_shape if image_tokens_shape is None else tuple(image_tokens_shape)
        self.self_norm.build(token_shape)
        self.cross_norm.build(token_shape)
        self.ffn_norm.build(token_shape)
        for layer in self.self_qkv + [self.self_output, self.cross_qkv[0], self.cross_output]:
            layer.build(token_shape)
        for layer in self.cross_qkv[1:]:
            layer.build(image_shape)
        self.ffn_in.build(token_shape)
        self.ffn_out.build(token_shape[:-1] + (self.intermediate_dim,))
        self.built = True

    def call(self, x, image_tokens, padding_mask=None, training=None):
        length = ops.shape(x)[1]
        positions = ops.arange(length)
        causal = ops.greater_equal(positions[:, None], positions[None, :])[None]  # (1, T, T)
        if padding_mask is not None:
            causal = ops.logical_and(causal, ops.cast(padding_mask, "bool")[:, None, :])
        else:
            causal = ops.broadcast_to(causal, (ops.shape(x)[0], length, length))
        h = self.self_norm(x)
        q, k, v = (layer(h) for layer in self.self_qkv)
        x = x + self.drop(self.self_output(multi_head_attention(q, k, v, self.num_heads, causal)), training=training)
        h = self.cross_norm(x)
        q = self.cross_qkv[0](h)
        k, v = self.cross_qkv[1](image_tokens), self.cross_qkv[2](image_tokens)
        x = x + self.drop(self.cross_output(multi_head_attention(q, k, v, self.num_heads)), training=training)
        h = self.ffn_out(keras.activations.gelu(self.ffn_in(self.ffn_norm(x)), approximate=False))
        return x + self.drop(h, training=training)

    def compute_output_shape(self, x_shape, *args, **kwargs):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim, "num_heads": self.num_heads,
                       "intermediate_dim": self.intermediate_dim, "dropout": self.dropout,
                       "layer_norm_epsilon": self.layer_norm_epsilon})
        return config

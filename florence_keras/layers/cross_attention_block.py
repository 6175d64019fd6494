"""`CrossAttentionBlock`: one stream's half of a METER co-attention layer (self-attention, cross-attention, FFN)."""

import keras
from keras import ops

_MASKED = -1e9


def attention_bias(key_mask, dtype="float32"):
    """`(B, Lk)` validity mask (1/True = attend) -> additive bias `(B, 1, 1, Lk)` (0 or -1e9); None -> None."""
    if key_mask is None:
        return None
    valid = ops.cast(key_mask, dtype)
    return ((1.0 - valid) * _MASKED)[:, None, None, :]


@keras.saving.register_keras_serializable(package="florence_keras")
class _MultiHeadAttention(keras.layers.Layer):
    """Scaled dot-product attention with `num_heads` heads, q/k/v/output `Dense` projections (with biases) and an
    optional key-validity mask; the softmax runs in float32."""

    def __init__(self, hidden_dim, num_heads, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.dropout = dropout
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        dense = dict(kernel_initializer=init, dtype=self.dtype_policy)
        self.query = keras.layers.Dense(hidden_dim, name="query", **dense)
        self.key = keras.layers.Dense(hidden_dim, name="key", **dense)
        self.value = keras.layers.Dense(hidden_dim, name="value", **dense)
        self.output_dense = keras.layers.Dense(hidden_dim, name="output", **dense)
        self.attention_dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, query_shape, context_shape=None, key_mask_shape=None):
        context_shape = query_shape if context_shape is None else context_shape
        self.query.build(query_shape)
        self.key.build(context_shape)
        self.value.build(context_shape)
        self.output_dense.build(tuple(query_shape[:-1]) + (self.hidden_dim,))
        self.built = True

    def _heads(self, x):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch, length, self.num_heads, self.hidden_dim // self.num_heads))
        return ops.transpose(x, (0, 2, 1, 3))

    def call(self, query, context, key_mask=None, training=None, return_weights=False):
        head_dim = self.hidden_dim // self.num_heads
        q = self._heads(self.query(query))
        k = self._heads(self.key(context))
        v = self._heads(self.value(context))
        scores = ops.cast(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))), "float32") / float(head_dim) ** 0.5
        bias = attention_bias(key_mask)
        if bias is not None:
            scores = scores + bias
        probabilities = ops.cast(ops.softmax(scores, axis=-1), q.dtype)
        weights = self.attention_dropout(probabilities, training=training)
        out = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))
        out = ops.reshape(out, (ops.shape(out)[0], ops.shape(out)[1], self.hidden_dim))
        out = self.output_dense(out)
        return (out, probabilities) if return_weights else out

    def compute_output_shape(self, query_shape, context_shape=None):
        return tuple(query_shape[:-1]) + (self.hidden_dim,)

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim, "num_heads": self.num_heads, "dropout": self.dropout})
        return config


@keras.saving.register_keras_serializable(package="florence_keras")
class CrossAttentionBlock(keras.layers.Layer):
    """One stream of a co-attention layer, post-LN as BERT / METER's `BertCrossLayer`:

        x = LN_1(x + SelfAttention(x, x, mask = x_mask))
        x = LN_2(x + CrossAttention(queries x, keys/values context, mask = context_mask))
        x = LN_3(x + W_2 · GELU(W_1 · x))

    (GELU exact (erf); dropout after each sub-layer and on the attention weights while training.) Key masks make
    padded tokens invisible to every query; the padded positions' own outputs are meaningless and must be ignored
    (the poolers read the first token).

    Args:
        hidden_dim: int, the width (divisible by `num_heads`).
        num_heads: int.
        intermediate_dim: int, the FFN width. Defaults to `4 * hidden_dim`.
        dropout: float in [0, 1). Defaults to 0.1 (BERT).
        layer_norm_epsilon: float. Defaults to 1e-12 (BERT).
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        x: `(B, L, hidden_dim)`, this stream. context: `(B, Lc, hidden_dim)`, the other stream.
        x_mask: optional `(B, L)` validity (1 = real token). context_mask: optional `(B, Lc)`.
        return_attention: bool; also return the cross-attention's probabilities `(B, num_heads, L, Lc)` (before
            dropout), e.g. for an attention target in training.

    Returns:
        `(B, L, hidden_dim)`, or `(that, cross-attention probabilities)` with `return_attention`.

    Example:
    >>> import numpy as np
    >>> block = CrossAttentionBlock(8, 2)
    >>> tuple(block(np.zeros((1, 3, 8), "float32"), np.zeros((1, 5, 8), "float32")).shape)
    (1, 3, 8)
    """

    def __init__(self, hidden_dim, num_heads, intermediate_dim=None, dropout=0.1, layer_norm_epsilon=1e-12,
                 **kwargs):
        if not isinstance(hidden_dim, int) or not isinstance(num_heads, int) or hidden_dim < 1 or num_heads < 1 \
                or hidden_dim % num_heads:
            raise ValueError(f"`hidden_dim` must be a positive int divisible by `num_heads`. Received: "
                             f"hidden_dim={hidden_dim!r}, num_heads={num_heads!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = int(intermediate_dim or 4 * hidden_dim)
        self.dropout = float(dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        policy = dict(dtype=self.dtype_policy)
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.self_attention = _MultiHeadAttention(hidden_dim, num_heads, dropout, name="self_attention", **policy)
        self.cross_attention = _MultiHeadAttention(hidden_dim, num_heads, dropout, name="cross_attention", **policy)
        self.intermediate = keras.layers.Dense(self.intermediate_dim, kernel_initializer=init, name="intermediate",
                                               **policy)
        self.ffn_output = keras.layers.Dense(hidden_dim, kernel_initializer=init, name="ffn_output", **policy)
        self.self_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="self_norm", **policy)
        self.cross_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="cross_norm", **policy)
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="ffn_norm", **policy)
        self.residual_dropout = keras.layers.Dropout(dropout, **policy)

    def build(self, x_shape, context_shape=None, x_mask_shape=None, context_mask_shape=None):
        context_shape = x_shape if context_shape is None else context_shape
        for shape in (x_shape, context_shape):
            if shape[-1] != self.hidden_dim:
                raise ValueError(f"Both streams must have width {self.hidden_dim}. Received shapes: "
                                 f"{x_shape}, {context_shape}")
        self.self_attention.build(x_shape, x_shape)
        self.cross_attention.build(x_shape, context_shape)
        self.intermediate.build(x_shape)
        self.ffn_output.build(tuple(x_shape[:-1]) + (self.intermediate_dim,))
        for norm in (self.self_norm, self.cross_norm, self.ffn_norm):
            norm.build(x_shape)
        self.built = True

    def call(self, x, context, x_mask=None, context_mask=None, training=None, return_attention=False):
        drop = self.residual_dropout
        x = self.self_norm(x + drop(self.self_attention(x, x, key_mask=x_mask, training=training),
                                    training=training))
        attended, attention = self.cross_attention(x, context, key_mask=context_mask, training=training,
                                                   return_weights=True)
        x = self.cross_norm(x + drop(attended, training=training))
        hidden = keras.activations.gelu(self.intermediate(x), approximate=False)
        out = self.ffn_norm(x + drop(self.ffn_output(hidden), training=training))
        return (out, attention) if return_attention else out

    def compute_output_shape(self, x_shape, *args, **kwargs):
        return tuple(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim, "num_heads": self.num_heads,
                       "intermediate_dim": self.intermediate_dim, "dropout": self.dropout,
                       "layer_norm_epsilon": self.layer_norm_epsilon})
        return config

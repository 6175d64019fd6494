"""Multi-head self-attention inside local windows with a relative position bias."""

import keras
import numpy as np
from keras import ops

from florence_keras.layers import fused_ops
from florence_keras.layers import window_utils


@keras.saving.register_keras_serializable(package="florence_keras")
class WindowAttention(keras.layers.Layer):
    """Window self-attention with a learned relative position bias (Swin).

    Works for windows of any rank: a 2-D `window_size=(7, 7)` for images and a
    3-D `(2, 7, 7)` for video share this layer. The bias table has one row per
    relative offset, `prod(2 * w - 1)` rows and `num_heads` columns.

    Args:
        hidden_dim: int, token width.
        num_heads: int, attention heads; must divide `hidden_dim`.
        window_size: tuple of ints, the window the bias table is made for.
        qkv_bias: bool, whether the fused query/key/value projection has a bias.
            Defaults to `True`.
        attention_dropout: float, dropout on attention probabilities.
        projection_dropout: float, dropout after the output projection.

    Call arguments:
        windows: `(batch * num_windows, N, hidden_dim)` tokens, `N = prod(window)`.
        attention_mask: optional `(num_windows, N, N)` additive mask (shifted
            windows).
        window_size: optional tuple, the window actually used when it is smaller
            than the table's window (feature map smaller than the window).
        training: bool.
        input_norm: optional `LayerNormalization` whose scale and offset are
            still to be applied to `windows` (standardised tokens); they are
            folded into the query/key/value projection's weights.

    Returns:
        `(batch * num_windows, N, hidden_dim)` tokens.

    Example:
    >>> layer = WindowAttention(hidden_dim=8, num_heads=2, window_size=(2, 2))
    >>> tuple(layer(np.zeros((3, 4, 8), "float32")).shape)
    (3, 4, 8)
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        window_size,
        qkv_bias=True,
        attention_dropout=0.0,
        projection_dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_dim <= 0 or num_heads <= 0 or hidden_dim % num_heads:
            raise ValueError(
                "`hidden_dim` must be a positive multiple of `num_heads`. "
                f"Received: hidden_dim={hidden_dim}, num_heads={num_heads}"
            )
        window_size = tuple(int(w) for w in window_size)
        if len(window_size) not in (2, 3) or min(window_size) < 1:
            raise ValueError(
                "`window_size` must hold 2 or 3 positive ints. "
                f"Received: window_size={window_size}"
            )
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.qkv_bias = qkv_bias
        self.attention_dropout = attention_dropout
        self.projection_dropout = projection_dropout
        self.head_dim = hidden_dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = keras.layers.Dense(
            3 * hidden_dim, use_bias=qkv_bias, dtype=self.dtype_policy, name="qkv"
        )
        self.projection = keras.layers.Dense(
            hidden_dim, dtype=self.dtype_policy, name="projection"
        )
        self.attention_dropout_layer = keras.layers.Dropout(
            attention_dropout, dtype=self.dtype_policy
        )
        self.projection_dropout_layer = keras.layers.Dropout(
            projection_dropout, dtype=self.dtype_policy
        )

    def build(self, input_shape):
        self.qkv.build(input_shape)
        self.projection.build(input_shape)
        num_offsets = int(np.prod([2 * w - 1 for w in self.window_size]))
        self.relative_position_bias_table = self.add_weight(
            name="relative_position_bias_table",
            shape=(num_offsets, self.num_heads),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )
        self.built = True

    def relative_position_bias(self, window_size=None):
        """`(num_heads, N, N)` bias for `window_size` (default: the table's)."""
        window_size = tuple(window_size or self.window_size)
        index = window_utils.relative_position_index(window_size, self.window_size)
        n = index.shape[0]
        bias = ops.take(self.relative_position_bias_table, index.reshape(-1), axis=0)
        bias = ops.reshape(bias, (n, n, self.num_heads))
        return ops.transpose(bias, (2, 0, 1))

    def call(
        self,
        windows,
        attention_mask=None,
        window_size=None,
        training=None,
        input_norm=None,
    ):
        n = windows.shape[1]
        heads, head_dim = self.num_heads, self.head_dim
        # Tokens as the rows of one matrix: a 2-D MatMul + BiasAdd that oneDNN fuses.
        rows = ops.reshape(windows, (-1, self.hidden_dim))
        if input_norm is None:
            qkv = self.qkv(rows)
        else:
            qkv = fused_ops.normalized_dense(rows, input_norm, self.qkv)
        qkv = ops.reshape(qkv, (-1, n, 3, heads, head_dim))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))  # (3, B*nW, heads, N, d)
        # Unstacking the leading axis is a view, and its gradient is one stack:
        # indexing qkv[0], qkv[1], qkv[2] would scatter three full-size
        # gradients and add them (10% of a CoSwin-T training step).
        query, key, value = ops.unstack(qkv, 3, axis=0)
        scores = ops.matmul(
            query * ops.cast(self.scale, query.dtype), ops.swapaxes(key, -1, -2)
        )
        # Softmax in float32 under mixed precision; the position bias and the
        # shifted-window mask are added together in one pass.
        scores = ops.cast(scores, "float32")
        bias = ops.cast(self.relative_position_bias(window_size), "float32")
        if attention_mask is None:
            scores = scores + bias
        else:
            num_windows = attention_mask.shape[0]
            bias = bias[None] + ops.cast(attention_mask, "float32")[:, None]
            scores = ops.reshape(scores, (-1, num_windows, heads, n, n)) + bias
            scores = ops.reshape(scores, (-1, heads, n, n))
        probs = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)
        probs = self.attention_dropout_layer(probs, training=training)
        context = ops.matmul(probs, value)  # (B*nW, heads, N, d)
        context = ops.reshape(ops.transpose(context, (0, 2, 1, 3)), (-1, self.hidden_dim))
        outputs = self.projection_dropout_layer(self.projection(context), training=training)
        return ops.reshape(outputs, (-1, n, self.hidden_dim))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "window_size": self.window_size,
                "qkv_bias": self.qkv_bias,
                "attention_dropout": self.attention_dropout,
                "projection_dropout": self.projection_dropout,
            }
        )
        return config

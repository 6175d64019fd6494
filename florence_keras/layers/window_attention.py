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

    def _project_qkv(self, rows, input_norm):
        """Queries, keys and values `(M, 3 * hidden_dim)` of token rows.

        Returns:
            `(qkv, query_scaled)`: with `input_norm` the query scale is folded into
            the weights together with the norm's affine.
        """
        if input_norm is None:
            return self.qkv(rows), False
        return fused_ops.normalized_dense(
            rows, input_norm, self.qkv, output_scale=(self.scale, self.hidden_dim)), True

    def _attend(self, qkv, query_scaled, attention_mask, window_size, training):
        """Attention of `(3, B * nW, heads, N, d)` projections -> `(B * nW, heads, N, d)`."""
        n, heads = qkv.shape[-2], self.num_heads
        # Unstacking the leading axis is a view, and its gradient is one stack:
        # indexing qkv[0], qkv[1], qkv[2] would scatter three full-size
        # gradients and add them (10% of a CoSwin-T training step).
        query, key, value = ops.unstack(qkv, 3, axis=0)
        if not query_scaled:
            query = query * ops.cast(self.scale, query.dtype)
        scores = ops.matmul(query, ops.swapaxes(key, -1, -2))
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
        return ops.matmul(probs, value)

    def call(
        self,
        windows,
        attention_mask=None,
        window_size=None,
        training=None,
        input_norm=None,
    ):
        n = windows.shape[1]
        # Tokens as the rows of one matrix: a 2-D MatMul + BiasAdd that oneDNN fuses.
        qkv, scaled = self._project_qkv(ops.reshape(windows, (-1, self.hidden_dim)), input_norm)
        qkv = ops.reshape(qkv, (-1, n, 3, self.num_heads, self.head_dim))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))  # (3, B*nW, heads, N, d)
        context = self._attend(qkv, scaled, attention_mask, window_size, training)
        context = ops.reshape(ops.transpose(context, (0, 2, 1, 3)), (-1, self.hidden_dim))
        return ops.reshape(self.project(context, training=training), (-1, n, self.hidden_dim))

    def attend_map(self, x, window_size=None, attention_mask=None, training=None,
                   input_norm=None):
        """Window attention over a whole map, before the output projection.

        Equal to partitioning `x` into windows, `call`, and putting the windows
        back, but with fewer copies: the window partition and the head split are
        one transpose of the query/key/value tensor, the head merge and the window
        merge one transpose of the context; the output projection is left to
        `project`, which can then work on the map's rows (its bias and the
        residual add fuse into the matrix product).

        Args:
            x: `(batch, *spatial, hidden_dim)`, each spatial extent a multiple of
                `window_size` (already padded and shifted).
            window_size: tuple, the window used (default: the table's).
            attention_mask: optional `(num_windows, N, N)` additive mask.
            training: bool.
            input_norm: as in `call`.

        Returns:
            `(batch, *spatial, hidden_dim)` attention context, heads concatenated.
        """
        window = tuple(window_size or self.window_size)
        spatial = tuple(x.shape[1:-1])
        rank = len(spatial)
        grid = [extent // w for extent, w in zip(spatial, window)]
        heads, head_dim = self.num_heads, self.head_dim
        qkv, scaled = self._project_qkv(ops.reshape(x, (-1, self.hidden_dim)), input_norm)
        shape = [-1]
        for g, w in zip(grid, window):
            shape += [g, w]
        qkv = ops.reshape(qkv, shape + [3, heads, head_dim])
        # (B, g1, w1, g2, w2, 3, heads, d) -> (3, B, g1, g2, heads, w1, w2, d)
        perm = [1 + 2 * rank, 0] + [1 + 2 * i for i in range(rank)] + [2 + 2 * rank]
        perm += [2 + 2 * i for i in range(rank)] + [3 + 2 * rank]
        qkv = ops.reshape(ops.transpose(qkv, perm), (3, -1, heads, int(np.prod(window)), head_dim))
        context = self._attend(qkv, scaled, attention_mask,
                               window if window != self.window_size else None, training)
        # (B, g1, g2, heads, w1, w2, d) -> (B, g1, w1, g2, w2, heads, d)
        context = ops.reshape(context, [-1] + grid + [heads] + list(window) + [head_dim])
        perm = [0]
        for i in range(rank):
            perm += [1 + i, rank + 2 + i]
        perm += [rank + 1, 2 * rank + 2]
        context = ops.transpose(context, perm)
        return ops.reshape(context, (-1,) + spatial + (self.hidden_dim,))

    def project(self, context, training=None):
        """The output projection (+ dropout) of `attend_map`'s context, any leading shape."""
        return self.projection_dropout_layer(self.projection(context), training=training)

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

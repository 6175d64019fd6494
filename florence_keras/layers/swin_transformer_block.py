"""A (shifted-)window transformer block for 2-D images and 3-D video."""

import keras
import numpy as np
from keras import ops

from florence_keras.layers import fused_ops
from florence_keras.layers import window_utils
from florence_keras.layers.drop_path import DropPath
from florence_keras.layers.window_attention import WindowAttention


@keras.saving.register_keras_serializable(package="florence_keras")
class SwinTransformerBlock(keras.layers.Layer):
    """Pre-norm window attention + MLP block with an optional cyclic shift.

    Input and output are channels-last maps `(batch, *spatial, hidden_dim)`
    (2 spatial axes for images, 3 for video) with static spatial extents. The
    map is zero-padded after the first LayerNorm up to a multiple of the window
    (as Swin does: padded tokens are not masked), rolled by `-shift_size` when
    shifting, split into windows, attended, and put back. Maps no larger than
    the window use a smaller window and no shift (Swin's rule).

    Args:
        hidden_dim: int, channels.
        num_heads: int.
        window_size: tuple of 2 or 3 ints.
        shift_size: tuple of ints (zeros for a regular block), usually half the
            window in every other block.
        mlp_ratio: float, MLP hidden width as a multiple of `hidden_dim`.
        qkv_bias: bool.
        dropout: float, dropout after the attention projection and in the MLP.
        attention_dropout: float.
        drop_path: float, stochastic depth rate of both residual branches.
        layer_norm_epsilon: float. Defaults to `1e-5` (Swin).

    Example:
    >>> import numpy as np
    >>> block = SwinTransformerBlock(8, 2, window_size=(2, 2), shift_size=(1, 1))
    >>> tuple(block(np.zeros((1, 4, 4, 8), "float32")).shape)
    (1, 4, 4, 8)
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        window_size,
        shift_size,
        mlp_ratio=4.0,
        qkv_bias=True,
        dropout=0.0,
        attention_dropout=0.0,
        drop_path=0.0,
        layer_norm_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        window_size = tuple(int(w) for w in window_size)
        shift_size = tuple(int(s) for s in shift_size)
        if len(shift_size) != len(window_size) or any(
            not 0 <= s < w for s, w in zip(shift_size, window_size)
        ):
            raise ValueError(
                "`shift_size` needs one value in [0, window) per window axis. "
                f"Received: window_size={window_size}, shift_size={shift_size}"
            )
        if mlp_ratio <= 0:
            raise ValueError(f"`mlp_ratio` must be positive. Received: mlp_ratio={mlp_ratio}")
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = shift_size
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.drop_path = drop_path
        self.layer_norm_epsilon = layer_norm_epsilon

        policy = self.dtype_policy
        self.norm_before = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=policy, name="norm_before"
        )
        self.attention = WindowAttention(
            hidden_dim,
            num_heads,
            window_size,
            qkv_bias=qkv_bias,
            attention_dropout=attention_dropout,
            projection_dropout=dropout,
            dtype=policy,
            name="attention",
        )
        self.norm_after = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=policy, name="norm_after"
        )
        self.mlp_dense_1 = keras.layers.Dense(
            int(hidden_dim * mlp_ratio), dtype=policy, name="mlp_dense_1"
        )
        self.mlp_dense_2 = keras.layers.Dense(hidden_dim, dtype=policy, name="mlp_dense_2")
        self.mlp_dropout = keras.layers.Dropout(dropout, dtype=policy)
        self.drop_path_layer = DropPath(drop_path, dtype=policy)

    def build(self, input_shape):
        self._check_shape(input_shape)
        token_shape = (None, int(self.hidden_dim))
        self.norm_before.build(input_shape)
        self.attention.build((None, None, self.hidden_dim))
        self.norm_after.build(input_shape)
        self.mlp_dense_1.build(token_shape)
        self.mlp_dense_2.build((None, int(self.hidden_dim * self.mlp_ratio)))
        self.built = True

    def _check_shape(self, shape):
        spatial = tuple(shape[1:-1])
        if len(spatial) != len(self.window_size) or any(d is None for d in spatial):
            raise ValueError(
                f"{self.name} needs a static {len(self.window_size)}-D map "
                f"(batch, *spatial, channels). Received input shape: {tuple(shape)}"
            )
        if shape[-1] != self.hidden_dim:
            raise ValueError(
                f"{self.name} expects {self.hidden_dim} channels. "
                f"Received input shape: {tuple(shape)}"
            )
        return spatial

    def geometry(self, spatial_shape):
        """`(window, shift, padded_shape, mask)` used for a map of `spatial_shape`.

        Computed from the static shape of each call (not fixed at build time), so
        one block serves any input size: the weights do not depend on it.
        """
        window, shift = window_utils.effective_window_and_shift(
            spatial_shape, self.window_size, self.shift_size
        )
        padded = window_utils.padded_shape(spatial_shape, window)
        mask = window_utils.shifted_window_mask(padded, window, shift)
        return window, shift, padded, mask

    def _residual(self, x, branch, tokens, training):
        """`x + drop_path(branch)` on `(rows, channels)`; reshaped per example only
        when stochastic depth is active, so that at inference the add stays next to
        the projection's MatMul + BiasAdd and fuses into it."""
        if training and self.drop_path > 0:
            branch = ops.reshape(branch, (-1, tokens, self.hidden_dim))
            branch = ops.reshape(self.drop_path_layer(branch, training=training),
                                 (-1, self.hidden_dim))
        return x + branch

    def call(self, inputs, training=None):
        spatial = self._check_shape(inputs.shape)
        window, shift, padded, mask = self.geometry(spatial)
        axes = tuple(range(1, len(spatial) + 1))
        channels = self.hidden_dim
        tokens = int(np.prod(spatial))
        # The residual stream as rows (batch * tokens, channels): reshapes are
        # free, and every projection is a 2-D MatMul that oneDNN fuses with its
        # BiasAdd (+ GELU, + residual add at inference).
        x = ops.reshape(inputs, (-1, channels))
        x_hat = fused_ops.standardize(x, self.layer_norm_epsilon)
        # Swin pads *after* the norm (padded tokens are zeros), so the norm's
        # affine can move into the qkv projection only when nothing is padded,
        # and it pays only when the tokens outnumber the projection's outputs.
        fold = padded == spatial and fused_ops.worth_folding(x_hat.shape[0], 3 * channels)
        if fold:
            y = ops.cast(x_hat, self.compute_dtype)
        else:
            y = fused_ops.apply_affine(x_hat, self.norm_before)
        y = ops.reshape(y, (-1,) + spatial + (channels,))
        y = window_utils.pad_to_window(y, spatial, window)
        if any(shift):
            y = ops.roll(y, shift=[-s for s in shift], axis=axes)
        # Windows, heads and back in two transposes (WindowAttention.attend_map).
        y = self.attention.attend_map(
            y,
            window_size=window,
            attention_mask=None if mask is None else ops.convert_to_tensor(mask),
            training=training,
            input_norm=self.norm_before if fold else None,
        )
        if any(shift):
            y = ops.roll(y, shift=list(shift), axis=axes)
        if padded != spatial:
            y = y[(slice(None),) + tuple(slice(0, e) for e in spatial)]
        y = self.attention.project(ops.reshape(y, (-1, channels)), training=training)
        x = self._residual(x, y, tokens, training)

        y = fused_ops.standardize(x, self.layer_norm_epsilon)
        y = fused_ops.normalized_dense(y, self.norm_after, self.mlp_dense_1)
        y = fused_ops.gelu(y, training=bool(training))
        y = self.mlp_dropout(y, training=training)
        y = self.mlp_dropout(self.mlp_dense_2(y), training=training)
        x = self._residual(x, y, tokens, training)
        return ops.reshape(x, (-1,) + spatial + (channels,))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "window_size": self.window_size,
                "shift_size": self.shift_size,
                "mlp_ratio": self.mlp_ratio,
                "qkv_bias": self.qkv_bias,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "drop_path": self.drop_path,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config

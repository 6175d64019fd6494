"""Pooled motion features: local correlation of token maps between consecutive time steps."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="florence_keras")
class MotionCorrelation(keras.layers.Layer):
    """Where each token went between consecutive time steps, pooled over the clip (direction-selective).

    A video encoder pooled over space and time is blind to the direction of motion: a linear feature summed over a
    translating pattern does not depend on the velocity, and an inflated image model (its conv kernels copied or
    centred along time) is exactly symmetric under time reversal, so "moving left" and "moving right" give the same
    pooled feature at initialisation. This layer measures the motion directly, as a correlation (cost) volume —
    FlowNet's correlation layer, MotionSqueeze (Kwon et al., ECCV 2020) and correlation networks (Wang et al., CVPR
    2020) — and pools it into a fixed-size vector that a linear head can read.

    For tokens `f` of shape `(B, T, H, W, C)`, L2-normalised over channels, and each displacement `d` in the
    `(2r+1)^2` square of `radius` r:
    * `c_d(t, y, x) = <f(t, y, x), f(t+1, (y, x) + d)>` (zero outside the map);
    * `p_d = softmax_d(temperature * c_d)`, and the soft-argmax displacement `u = sum_d p_d * d` (in tokens, `(dy,
      dx)`);
    * a change weight `w = max(1 - c_0, 0)`: how much the token changed in place (0 where nothing moves, so static
      or flat background does not dilute the pooled motion).

    Output (per clip), with means over all `(T-1) x H x W` positions: `[mean(w*u) / (mean w + epsilon)  (2 values,
    dy, dx), (2r+1)^2 * mean(w*p) / (mean w + epsilon)  ((2r+1)^2 values), mean w  (1 value)]`. A clip with one
    time step gives zeros; a still clip (`w` ~ 0 everywhere) gives ~0 too, thanks to `epsilon`.

    Args:
        radius: int >= 1, the largest displacement (in tokens) along each axis. Defaults to `2`.
        temperature: float > 0, the inverse temperature of the soft-argmax over cosine similarities. Defaults to
            `10.0`.
        epsilon: float > 0, added to `mean w` (a clip whose tokens change less than this on average counts as
            still). Defaults to `1e-3`.
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float tensor `(B, T, H, W, C)`.

    Returns:
        float tensor `(B, (2r+1)^2 + 3)`.

    Example:
    >>> import numpy as np
    >>> tokens = np.zeros((1, 2, 5, 5, 2), "float32")
    >>> tokens[..., 1] = 1.0  # background
    >>> tokens[0, 0, 2, 1] = tokens[0, 1, 2, 2] = [1.0, 0.0]  # one token moves one step right
    >>> out = np.asarray(MotionCorrelation(radius=1)(tokens))
    >>> out.shape, [round(float(v), 2) for v in out[0, :2]]  # (dy, dx): the moved token (1) and the uncovered one (0)
    ((1, 12), [0.0, 0.49])
    """

    def __init__(self, radius=2, temperature=10.0, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(radius, int) or radius < 1:
            raise ValueError(f"`radius` must be an int >= 1. Received: radius={radius!r}")
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be > 0. Received: epsilon={epsilon!r}")
        if not temperature > 0:
            raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature!r}")
        self.radius = radius
        self.temperature = float(temperature)
        self.epsilon = float(epsilon)
        self.offsets = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]

    @property
    def output_dim(self):
        return len(self.offsets) + 3

    def call(self, inputs):
        if len(inputs.shape) != 5:
            raise ValueError(f"`inputs` must be (B, T, H, W, C) tokens. Received shape {inputs.shape}")
        frames, height, width = inputs.shape[1], inputs.shape[2], inputs.shape[3]
        x = ops.cast(inputs, self.compute_dtype)
        x = x / ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True) + 1e-12)
        batch = ops.shape(x)[0]
        if frames is None or frames < 2:  # one time step: nothing moves
            return ops.zeros((batch, self.output_dim), self.compute_dtype)
        r = self.radius
        current, following = x[:, :-1], x[:, 1:]
        padded = ops.pad(following, [(0, 0), (0, 0), (r, r), (r, r), (0, 0)])
        volume = ops.stack([ops.sum(current * padded[:, :, r + dy:r + dy + height, r + dx:r + dx + width], axis=-1)
                            for dy, dx in self.offsets], axis=-1)  # (B, T-1, H, W, K)
        probs = ops.softmax(self.temperature * volume, axis=-1)
        offsets = ops.convert_to_tensor([[float(dy), float(dx)] for dy, dx in self.offsets], self.compute_dtype)
        displacement = ops.einsum("bthwk,kd->bthwd", probs, offsets)
        change = ops.relu(1.0 - volume[..., len(self.offsets) // 2:len(self.offsets) // 2 + 1])  # (B,T-1,H,W,1)
        axes = (1, 2, 3)
        mean_change = ops.mean(change, axis=axes)  # (B, 1)
        total = mean_change + self.epsilon
        pooled_displacement = ops.mean(change * displacement, axis=axes) / total
        pooled_probs = ops.mean(change * probs, axis=axes) / total * float(len(self.offsets))
        return ops.concatenate([pooled_displacement, pooled_probs, mean_change], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update({"radius": self.radius, "temperature": self.temperature, "epsilon": self.epsilon})
        return config

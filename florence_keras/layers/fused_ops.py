"""Fast building blocks shared by the window-transformer layers (keras.ops only).

Profiling CoSwin-T on CPU (benchmarks/profile_ops.py) showed that after the
matrix products, time goes to full-size element-wise passes. These helpers
remove passes without changing the math:

* `standardize` computes LayerNorm's `(x - mean) / sqrt(var + eps)` with three
  full-size writes (Keras' `LayerNormalization` makes six), in float32.
* `gelu` computes the exact GELU in float32 (TensorFlow's bfloat16 `erfc` has no vectorised
  kernel) and, in training, with a hand-written gradient `Φ(x) + x φ(x)` that reuses the
  forward's `Φ(x)`: a third fewer passes than differentiating `x Φ(x)` op by op.
* `normalized_dense` applies a LayerNorm's scale and offset *inside* the next
  projection: `(x̂ γ + β) W + b = x̂ (γ W) + (β W + b)`. The folded weights are
  `C × N`; the two full-size passes over the tokens disappear, and the
  product is a 2-D `MatMul` + `BiasAdd` that oneDNN fuses (with a following
  GELU, too, at inference). Folding costs two `C × N` passes over the weights
  (the scaled kernel and the `β W` product) on every call, so it is done only
  when the tokens outnumber the outputs (`worth_folding`): at batch 1 the deep
  stages have fewer tokens (7 × 7 = 49 rows at 224 px) than the projections
  have outputs (2,304 for stage 4's qkv), and there the affine on the tokens is cheaper (profile_ops,
  swin_t_forward --batch 1: the fold's `Mul` and `MatMul` were 21% of the op time).

Numerically these are the same functions up to float32 rounding (the converter
parity tests hold at 1e-4; the layer tests check against Keras' own layers).
"""

import math

import keras
from keras import ops


def standardize(x, epsilon):
    """`(x - mean) / sqrt(var + epsilon)` over the last axis, in float32.

    Args:
        x: tensor `(..., C)` of any float dtype.
        epsilon: float added to the variance.

    Returns:
        float32 tensor of `x`'s shape.

    Example:
    >>> import numpy as np
    >>> y = standardize(np.array([[1.0, 3.0]], "float32"), 0.0)
    >>> [round(float(v), 4) for v in y[0]]
    [-1.0, 1.0]
    """
    x = ops.cast(x, "float32")
    mean = ops.mean(x, axis=-1, keepdims=True)
    centered = x - mean
    variance = ops.mean(ops.square(centered), axis=-1, keepdims=True)
    return centered * ops.rsqrt(variance + epsilon)


def apply_layer_norm(x, norm):
    """`norm(x)` for a `keras.layers.LayerNormalization` over the last axis, faster.

    Args:
        x: tensor `(..., C)`.
        norm: a built `LayerNormalization` (last axis, with scale and center).

    Returns:
        tensor in `norm.compute_dtype`, equal to `norm(x)` up to rounding.
    """
    return apply_affine(standardize(x, norm.epsilon), norm)


def apply_affine(x_hat, norm):
    """`γ x̂ + β` of a `LayerNormalization`, for standardised `x_hat`, in its compute dtype."""
    y = ops.cast(x_hat, "float32") * ops.cast(norm.gamma, "float32")
    return ops.cast(y + ops.cast(norm.beta, "float32"), norm.compute_dtype)


def _foldable(norm, dense):
    # LoRA or quantised projections keep Keras' own call (their kernels are not plain).
    return (
        norm is not None
        and norm.scale
        and norm.center
        and not getattr(dense, "lora_enabled", False)
        and getattr(dense, "quantization_mode", None) is None
        and dense.activation in (None, keras.activations.linear)
    )


def worth_folding(rows, units):
    """Whether folding a LayerNorm into an `N = units`-output projection of `rows` tokens saves work.

    Folding costs about `2 C N` (scaled kernel, `β W`) per call; applying the affine to the tokens costs about
    `2 M C`. So fold when `M > N`, and when `M` is not known while tracing (a dynamic batch: assume it is large).

    Example:
    >>> worth_folding(3136, 288), worth_folding(49, 2304), worth_folding(None, 2304)
    (True, False, True)
    """
    return rows is None or rows > units


def normalized_dense(x_hat, norm, dense, output_scale=None):
    """`dense(γ x̂ + β)` with the LayerNorm affine folded into `dense`'s weights.

    Args:
        x_hat: standardised rows `(M, C)` (see `standardize`), any float dtype.
        norm: the `LayerNormalization` whose `gamma`/`beta` belong to `x_hat`.
        dense: a built `keras.layers.Dense` without activation, kernel `(C, N)`.
        output_scale: optional `(s, k)`: the first `k` outputs are multiplied by
            `s` (attention's query scale), folded into the weights too.

    Returns:
        `(M, N)` tensor in `dense.compute_dtype`.
    """
    dtype = dense.compute_dtype
    scale = None
    if output_scale is not None:
        factor, count = output_scale
        width = dense.units
        scale = ops.convert_to_tensor([float(factor)] * count + [1.0] * (width - count))
    if not _foldable(norm, dense) or not worth_folding(x_hat.shape[0], dense.units):
        y = dense(apply_affine(x_hat, norm))
        return y if scale is None else y * ops.cast(scale, y.dtype)
    kernel = ops.cast(dense.kernel, "float32")
    if scale is not None:
        kernel = kernel * scale
    gamma = ops.cast(norm.gamma, "float32")
    beta = ops.cast(norm.beta, "float32")
    folded_kernel = ops.cast(ops.expand_dims(gamma, 1) * kernel, dtype)
    folded_bias = ops.matmul(ops.expand_dims(beta, 0), kernel)[0]
    if dense.bias is not None:
        bias = ops.cast(dense.bias, "float32")
        folded_bias = folded_bias + (bias if scale is None else bias * scale)
    y = ops.matmul(ops.cast(x_hat, dtype), folded_kernel)
    return ops.add(y, ops.cast(folded_bias, dtype))


@ops.custom_gradient
def _gelu_with_gradient(x):
    cdf = 0.5 * ops.erfc(x * (-1.0 / math.sqrt(2.0)))

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        pdf = ops.exp(ops.square(x) * -0.5) * (1.0 / math.sqrt(2.0 * math.pi))
        return upstream * (cdf + x * pdf)

    return x * cdf, grad


def gelu(x, training=False):
    """Exact (erf) GELU `x Φ(x)`, computed in float32, returned in `x`'s dtype.

    Args:
        x: float tensor.
        training: bool. In training the gradient is the hand-written `Φ(x) + x φ(x)`; at
            inference Keras' own GELU is used, which oneDNN fuses into a preceding
            MatMul + BiasAdd.

    Returns:
        tensor of `x`'s shape and dtype.

    Example:
    >>> import numpy as np
    >>> [round(float(v), 4) for v in gelu(np.array([-1.0, 0.0, 2.0], "float32"))]
    [-0.1587, 0.0, 1.9545]
    """
    dtype = x.dtype
    x = ops.cast(x, "float32")
    if training:
        y = _gelu_with_gradient(x)
    else:
        y = keras.activations.gelu(x, approximate=False)
    return ops.cast(y, dtype)

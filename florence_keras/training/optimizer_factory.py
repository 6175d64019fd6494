"""AdamW with warm-up + cosine decay and no weight decay on norms, biases and the logit scale."""

import keras

from florence_keras.training.fused_adamw import FusedAdamW
from florence_keras.training.warmup_cosine_decay import WarmupCosineDecay


def no_weight_decay_variables(variables, extra_names=()):
    """Selects the variables that AdamW must not decay.

    Rule [ours, as open_clip / UniCL]: every variable of rank <= 1 — normalisation scales and offsets,
    biases, the scalar logit scale — plus any variable whose path contains one of `extra_names`
    (e.g. `"relative_position_bias"` for Swin's bias tables). Matrices and convolution kernels are decayed.

    Args:
        variables: iterable of Keras variables.
        extra_names: iterable of substrings of `variable.path` to exclude as well.

    Returns:
        A list of the excluded variables.

    Example:

    >>> layer = keras.layers.Dense(3)
    >>> layer.build((None, 2))
    >>> [v.name for v in no_weight_decay_variables(layer.weights)]
    ['bias']
    """
    extra_names = tuple(extra_names)
    return [
        v
        for v in variables
        if len(v.shape) <= 1 or any(name in v.path for name in extra_names)
    ]


def make_optimizer(
    trainable_variables,
    *,
    peak_learning_rate,
    total_steps,
    warmup_steps=0,
    end_learning_rate=0.0,
    weight_decay=0.1,
    beta_1=0.9,
    beta_2=0.98,
    epsilon=1e-6,
    precision="float32",
    no_decay_names=(),
    optimizer_class=None,
):
    """Builds the UniCL pretraining optimizer: AdamW (`FusedAdamW`) + `WarmupCosineDecay`.

    Defaults are CLIP / open_clip's (β2 0.98, ε 1e-6, wd 0.1) [ours: Florence reports none]. Weight decay
    skips `no_weight_decay_variables(trainable_variables, no_decay_names)`. With
    `precision="mixed_float16"` the optimizer is wrapped in a dynamic `keras.optimizers.LossScaleOptimizer`.
    Call inside the distribution strategy's scope: the optimizer is built here (its slots are created).

    Gradient clipping is not configured here on purpose: Keras clips each replica's gradient *before* the
    cross-replica sum, which is not the global-norm clip. `UniCLTrainer(clip_norm=...)` clips the summed
    gradient instead.

    Args:
        trainable_variables: the model's trainable variables.
        peak_learning_rate: float, learning rate after warm-up.
        total_steps: int, total training steps.
        warmup_steps: int, linear warm-up steps. Defaults to 0.
        end_learning_rate: float, final learning rate. Defaults to 0.
        weight_decay: float >= 0, decoupled weight decay. Defaults to 0.1.
        beta_1, beta_2, epsilon: Adam constants. Default to 0.9, 0.98, 1e-6.
        precision: "float32", "mixed_bfloat16" or "mixed_float16".
        no_decay_names: extra substrings of variable paths to exclude from weight decay.
        optimizer_class: an AdamW class taking AdamW's arguments (default `FusedAdamW`), e.g.
            `LayerwiseDecayAdamW`.

    Returns:
        A built `FusedAdamW` (Keras's AdamW with a one-kernel update), or a `LossScaleOptimizer`
        wrapping one.

    Example:

    >>> layer = keras.layers.Dense(3)
    >>> layer.build((None, 2))
    >>> opt = make_optimizer(layer.trainable_weights, peak_learning_rate=1e-3, total_steps=10)
    >>> type(opt).__name__
    'FusedAdamW'
    """
    if precision not in ("float32", "mixed_bfloat16", "mixed_float16"):
        raise ValueError(
            "`precision` must be 'float32', 'mixed_bfloat16' or 'mixed_float16'. "
            f"Received: precision={precision!r}"
        )
    if weight_decay < 0:
        raise ValueError(f"`weight_decay` must be >= 0. Received: weight_decay={weight_decay}")
    trainable_variables = list(trainable_variables)
    schedule = WarmupCosineDecay(
        peak_learning_rate,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        end_learning_rate=end_learning_rate,
    )
    optimizer = (optimizer_class or FusedAdamW)(
        learning_rate=schedule,
        weight_decay=weight_decay,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
    )
    excluded = no_weight_decay_variables(trainable_variables, no_decay_names)
    # Keras treats an empty var_list as "nothing to exclude"; always pass the list explicitly.
    optimizer.exclude_from_weight_decay(var_list=excluded)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(trainable_variables)
    return optimizer

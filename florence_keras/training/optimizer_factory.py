"""The training optimizer: AdamW from an `AdamWConfig`, warm-up + cosine decay, no decay on norms and biases."""

import logging

import keras

from florence_keras.models.adamw_config import FINETUNE_ADAMW  # noqa: F401  (re-exported)
from florence_keras.models.adamw_config import AdamWConfig
from florence_keras.models.adamw_config import no_weight_decay_variables  # noqa: F401  (re-exported)
from florence_keras.training.fused_adamw import FusedAdamW
from florence_keras.training.warmup_cosine_decay import WarmupCosineDecay


def make_optimizer(
    trainable_variables,
    config=None,
    *,
    total_steps,
    precision="float32",
    optimizer_class=None,
):
    """Builds the training optimizer: AdamW (`FusedAdamW`) + `WarmupCosineDecay` from an `AdamWConfig`.

    Every hyper-parameter comes from `config` (default `AdamWConfig()`, pretraining's values; fine-tuning
    passes `FINETUNE_ADAMW`). Weight decay skips `config.excluded_variables(trainable_variables)`. With
    `precision="mixed_float16"` the optimizer is wrapped in a dynamic `keras.optimizers.LossScaleOptimizer`.
    Call inside the distribution strategy's scope: the optimizer is built here (its slots are created).

    Gradient clipping is not configured here on purpose: Keras clips each replica's gradient *before* the
    cross-replica sum, which is not the global-norm clip. `UniCLTrainer(clip_norm=...)` clips the summed
    gradient instead.

    Args:
        trainable_variables: the model's trainable variables.
        config: an `AdamWConfig` (learning rate, warm-up, end learning rate, weight decay, betas, epsilon,
            extra no-decay names). Defaults to `AdamWConfig()`.
        total_steps: int, total training steps (the length of the cosine).
        precision: "float32", "mixed_bfloat16" or "mixed_float16".
        optimizer_class: an AdamW class taking AdamW's arguments (default `FusedAdamW`), e.g.
            `LayerwiseDecayAdamW`.

    Returns:
        A built `FusedAdamW` (Keras's AdamW with a one-kernel update), or a `LossScaleOptimizer`
        wrapping one.

    Example:

    >>> layer = keras.layers.Dense(3)
    >>> layer.build((None, 2))
    >>> opt = make_optimizer(layer.trainable_weights, AdamWConfig(learning_rate=1e-3), total_steps=10)
    >>> type(opt).__name__, float(opt.weight_decay)
    ('FusedAdamW', 0.1)
    """
    if precision not in ("float32", "mixed_bfloat16", "mixed_float16"):
        raise ValueError(
            "`precision` must be 'float32', 'mixed_bfloat16' or 'mixed_float16'. "
            f"Received: precision={precision!r}"
        )
    config = AdamWConfig() if config is None else config
    if not isinstance(config, AdamWConfig):
        raise ValueError(f"`config` must be an AdamWConfig. Received: config={config!r}")
    trainable_variables = list(trainable_variables)
    warmup_steps = config.warmup_steps
    if isinstance(total_steps, int) and isinstance(warmup_steps, int) and warmup_steps >= total_steps > 0:
        # Flags compose: a warm-up as long as the run (e.g. the default warm-up with --steps=30) is shortened to
        # 10% of the run, not refused.
        shortened = int(0.1 * total_steps)
        logging.getLogger(__name__).warning(
            "Warm-up of %d steps is not shorter than the run (%d steps); using %d.", warmup_steps, total_steps,
            shortened)
        warmup_steps = shortened
    schedule = WarmupCosineDecay(
        config.learning_rate,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        end_learning_rate=config.end_learning_rate,
    )
    optimizer = (optimizer_class or FusedAdamW)(
        learning_rate=schedule,
        weight_decay=config.weight_decay,
        beta_1=config.beta_1,
        beta_2=config.beta_2,
        epsilon=config.epsilon,
    )
    # Keras treats an empty var_list as "nothing to exclude"; always pass the list explicitly.
    optimizer.exclude_from_weight_decay(var_list=config.excluded_variables(trainable_variables))
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(trainable_variables)
    return optimizer

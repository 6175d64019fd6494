"""`AdamWConfig`: the one set of AdamW + warm-up cosine hyper-parameters, and which variables are not decayed.

It lives with the Tasks because a Task owns its default `compile()` (keras-hub's rule); the training system
(`florence_keras.training.make_optimizer`) builds its optimizer from the same object, so pretraining, Keras
`fit` and fine-tuning cannot drift apart.
"""

import dataclasses

import keras


def no_weight_decay_variables(variables, extra_names=()):
    """Selects the variables that AdamW must not decay.

    Rule [ours, as open_clip / UniCL]: every variable of rank <= 1 — normalisation scales and offsets,
    biases, the scalar logit scale — every bias whatever its rank (a variable named `bias`, e.g. the
    `[heads, head_dim]` query/key/value biases of keras-hub's attention), plus any variable whose path contains
    one of `extra_names` (e.g. `"relative_position_bias"` for Swin's bias tables). Matrices and convolution
    kernels are decayed.

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
        if len(v.shape) <= 1 or v.path.rsplit("/", 1)[-1] == "bias" or any(name in v.path for name in extra_names)
    ]


@dataclasses.dataclass(frozen=True)
class AdamWConfig:
    """AdamW with linear warm-up and cosine decay: every hyper-parameter in one place.

    The defaults are pretraining's (SPEC §1: Florence reports AdamW but no values [paper]; these are
    CLIP's / open_clip's, which UniCL follows [ours]): peak learning rate 5e-4, weight decay 0.1 (SPEC's
    0.1–0.2 range, lower end), β1 0.9, β2 0.98 (CLIP's choice for large-batch contrastive training), ε 1e-6.
    Fine-tuning's values are `FINETUNE_ADAMW` below — the only other set in the project.

    Weight decay never applies to `no_weight_decay_variables(variables, no_decay_names)`.

    Args:
        learning_rate: float > 0, the peak learning rate (reached at the end of warm-up). Defaults to 5e-4.
        weight_decay: float >= 0, decoupled weight decay (multiplied by the learning rate). Defaults to 0.1.
        beta_1: float in [0, 1). Defaults to 0.9.
        beta_2: float in [0, 1). Defaults to 0.98.
        epsilon: float > 0. Defaults to 1e-6.
        warmup_steps: int >= 0, linear warm-up steps. Defaults to 0.
        end_learning_rate: float >= 0, the learning rate at the end of the cosine. Defaults to 0.
        no_decay_names: tuple of substrings of variable paths excluded from weight decay besides the
            rank <= 1 variables. Defaults to ().

    Example:

    >>> AdamWConfig().weight_decay, FINETUNE_ADAMW.beta_2
    (0.1, 0.999)
    >>> AdamWConfig(learning_rate=1e-3).replace(weight_decay=0.2).weight_decay
    0.2
    """

    learning_rate: float = 5e-4
    weight_decay: float = 0.1
    beta_1: float = 0.9
    beta_2: float = 0.98
    epsilon: float = 1e-6
    warmup_steps: int = 0
    end_learning_rate: float = 0.0
    no_decay_names: tuple = ()

    def __post_init__(self):
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be > 0. Received: learning_rate={self.learning_rate!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"`weight_decay` must be >= 0. Received: weight_decay={self.weight_decay!r}")
        for name in ("beta_1", "beta_2"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value!r}")
        if not self.epsilon > 0:
            raise ValueError(f"`epsilon` must be > 0. Received: epsilon={self.epsilon!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"`warmup_steps` must be an int >= 0. Received: warmup_steps={self.warmup_steps!r}")
        if not 0 <= self.end_learning_rate <= self.learning_rate:
            raise ValueError(
                "`end_learning_rate` must be in [0, learning_rate]. "
                f"Received: end_learning_rate={self.end_learning_rate!r}, learning_rate={self.learning_rate!r}"
            )
        if isinstance(self.no_decay_names, str):
            raise ValueError(
                f"`no_decay_names` must be a sequence of str. Received: no_decay_names={self.no_decay_names!r}")
        object.__setattr__(self, "no_decay_names", tuple(self.no_decay_names))

    def replace(self, **changes):
        """A copy with some fields changed (`None` values are ignored, so unset flags keep the default)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def excluded_variables(self, variables):
        """The variables weight decay skips: `no_weight_decay_variables(variables, self.no_decay_names)`."""
        return no_weight_decay_variables(variables, self.no_decay_names)

    def constant_rate_optimizer(self, variables):
        """A Keras `AdamW` at the constant peak learning rate, decay excluded from `excluded_variables`.

        What a Task's default `compile()` uses: `fit` knows no step count, so there is no schedule (the
        training system's `make_optimizer` adds warm-up and cosine decay).
        """
        optimizer = keras.optimizers.AdamW(
            learning_rate=self.learning_rate, weight_decay=self.weight_decay, beta_1=self.beta_1,
            beta_2=self.beta_2, epsilon=self.epsilon)
        # Keras treats an empty var_list as "nothing to exclude"; always pass the list explicitly.
        optimizer.exclude_from_weight_decay(var_list=self.excluded_variables(variables))
        return optimizer


# Fine-tuning's AdamW [ours, as BEiT / Swin fine-tuning]: weight decay 0.05, β2 0.999, ε 1e-8, a peak learning
# rate of 3e-4 with 20 warm-up steps (the built-in scenes' short runs; scale both with the batch and run).
FINETUNE_ADAMW = AdamWConfig(learning_rate=3e-4, weight_decay=0.05, beta_2=0.999, epsilon=1e-8, warmup_steps=20)

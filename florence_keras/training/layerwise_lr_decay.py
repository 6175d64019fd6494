"""Layer-wise learning-rate decay (BEiT / Swin fine-tuning) for the project's AdamW + warm-up cosine schedule.

Fine-tuning scales the learning rate of each variable by `decay ** (num_layers - 1 - layer_id)`: the patch /
token embedding (layer 0) moves least, each transformer block a little more, the head (the top layer) at the full
rate. Layer ids follow Swin's fine-tuning code (`get_swin_layer`, microsoft/Swin-Transformer `utils.py`), with
CoSwin's convolutional token embedding of stage i > 0 in the place of Swin's patch merging at the end of stage
i − 1:

    stem (stage 0's token embedding)  -> 0
    stage_i_embedding (i > 0)         -> sum(depths[:i])
    stage_i_block_j                   -> sum(depths[:i]) + j + 1
    anything else (final norm, ...)   -> num_layers - 1 = sum(depths) + 1   (multiplier 1)

The text encoder [ours: BEiT/Swin have none] gets the same rule on its own depth: `embedding` -> 0,
`block_j` -> j + 1, the rest -> top. Variables outside both encoders (projections, logit scale, a
classification head) keep the full learning rate.

The multiplier scales the *update*, not the gradient: Adam normalises the gradient by its running RMS, so a scaled
gradient would give (almost) the same step. `LayerwiseDecayAdamW` multiplies the learning rate that Keras passes to
`update_step` — and the decoupled weight decay, as in PyTorch's per-parameter-group AdamW — per variable.
"""

import re

import keras

from florence_keras.training.fused_adamw import FusedAdamW
from florence_keras.training.optimizer_factory import make_optimizer

_STEM = re.compile(r"^stem(/|$)")
_STAGE_EMBEDDING = re.compile(r"^stage_(\d+)_embedding(/|$)")
_STAGE_BLOCK = re.compile(r"^stage_(\d+)_block_(\d+)(/|$)")
_TEXT_EMBEDDING = re.compile(r"^embedding(/|$)")
_TEXT_BLOCK = re.compile(r"^block_(\d+)(/|$)")


def _encoder_layer_ids(variables, kind):
    """Layer id of each variable of one encoder, and that encoder's number of layers."""
    if kind == "image":
        depths = {}
        for variable in variables:
            match = _STAGE_BLOCK.match(variable.path)
            if match:
                stage, block = int(match.group(1)), int(match.group(2))
                depths[stage] = max(depths.get(stage, 0), block + 1)
        stage_starts = {}
        total = 0
        for stage in range(max(depths, default=-1) + 1):
            stage_starts[stage] = total
            total += depths.get(stage, 0)
        num_layers = total + 2
        ids = []
        for variable in variables:
            embedding, block = _STAGE_EMBEDDING.match(variable.path), _STAGE_BLOCK.match(variable.path)
            if _STEM.match(variable.path):
                ids.append(0)
            elif embedding:
                ids.append(stage_starts.get(int(embedding.group(1)), 0))
            elif block:
                ids.append(stage_starts[int(block.group(1))] + int(block.group(2)) + 1)
            else:
                ids.append(num_layers - 1)
        return ids, num_layers
    blocks = [_TEXT_BLOCK.match(v.path) for v in variables]
    num_layers = max([int(m.group(1)) + 1 for m in blocks if m], default=0) + 2
    ids = []
    for variable, block in zip(variables, blocks):
        if _TEXT_EMBEDDING.match(variable.path):
            ids.append(0)
        elif block:
            ids.append(int(block.group(1)) + 1)
        else:
            ids.append(num_layers - 1)
    return ids, num_layers


def layerwise_lr_multipliers(model, layer_decay, variables=None):
    """Per-variable learning-rate multipliers `layer_decay ** (num_layers - 1 - layer_id)`.

    Args:
        model: a FlorenceBackbone, or a model with a `backbone` attribute holding one (e.g. a classifier whose
            head is its own variables). Its `image_encoder` (CoSwin) and `text_encoder` sub-models are found by
            attribute; variables outside them get 1.0.
        layer_decay: float in (0, 1]; 1.0 gives every variable 1.0.
        variables: the variables to report, in order; defaults to `model.trainable_variables`.

    Returns:
        A list of floats aligned with `variables`.

    Example:

    >>> from florence_keras.models import presets
    >>> backbone = presets.build_backbone(presets.architecture_config("florence_mini", image_size=32))
    >>> multipliers = layerwise_lr_multipliers(backbone, 0.5)
    >>> paths = [v.path for v in backbone.trainable_variables]
    >>> multipliers[paths.index("image_projection/kernel")]
    1.0
    """
    if not 0 < layer_decay <= 1:
        raise ValueError(f"`layer_decay` must be in (0, 1]. Received: layer_decay={layer_decay}")
    variables = list(model.trainable_variables if variables is None else variables)
    backbone = getattr(model, "backbone", model)
    by_id = {}
    for attribute, kind in (("image_encoder", "image"), ("text_encoder", "text")):
        encoder = getattr(backbone, attribute, None)
        if encoder is None:
            continue
        encoder_variables = list(encoder.trainable_variables)
        ids, num_layers = _encoder_layer_ids(encoder_variables, kind)
        for variable, layer_id in zip(encoder_variables, ids):
            by_id[id(variable)] = float(layer_decay) ** (num_layers - 1 - layer_id)
    return [by_id.get(id(variable), 1.0) for variable in variables]


@keras.saving.register_keras_serializable(package="florence_keras")
class LayerwiseDecayAdamW(FusedAdamW):
    """The project's AdamW (`FusedAdamW`) with the learning rate (and decoupled weight decay) scaled per variable.

    For variable w with multiplier m and the schedule's learning rate η_t, one step is Keras's AdamW step with
    η_t replaced by m·η_t:

        w ← w − m·η_t·λ·w                  (weight decay, unless w is excluded)
        w ← w − m·η_t·√(1−β2ᵗ)/(1−β1ᵗ) · m̂ / (√v̂ + ε)

    The Adam update itself is `FusedAdamW`'s (TensorFlow's one-kernel `ResourceApplyAdam`, Keras's formula), given
    the scaled learning rate. Multipliers are set after `build` with `set_learning_rate_multipliers` (variables not
    given keep 1.0). They are a function of the model's structure, not training state, so they are not saved in
    checkpoints or in `get_config`; rebuild them after loading.

    Args:
        **kwargs: the arguments of `keras.optimizers.AdamW` / `FusedAdamW`.

    Example:

    >>> layer = keras.layers.Dense(2)
    >>> layer.build((None, 3))
    >>> optimizer = LayerwiseDecayAdamW(learning_rate=0.1)
    >>> optimizer.build(layer.trainable_variables)
    >>> optimizer.set_learning_rate_multipliers(layer.trainable_variables, [0.5, 1.0])
    >>> optimizer.learning_rate_multiplier(layer.kernel)
    0.5
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._lr_multipliers = {}

    def set_learning_rate_multipliers(self, variables, multipliers):
        """Sets the multiplier of each variable (aligned lists). Call before the first step is traced."""
        variables, multipliers = list(variables), list(multipliers)
        if len(variables) != len(multipliers):
            raise ValueError(
                "`variables` and `multipliers` must have the same length. "
                f"Received: {len(variables)} variables, {len(multipliers)} multipliers"
            )
        for variable, multiplier in zip(variables, multipliers):
            if not multiplier > 0:
                raise ValueError(f"Multipliers must be > 0. Received: {multiplier} for {variable.path}")
            self._lr_multipliers[self._var_key(variable)] = float(multiplier)

    def learning_rate_multiplier(self, variable):
        """The multiplier of `variable` (1.0 when none was set)."""
        return self._lr_multipliers.get(self._var_key(variable), 1.0)

    def _apply_weight_decay(self, variables):
        # Applied per variable in `update_step`, with the variable's scaled learning rate.
        return

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self.learning_rate_multiplier(variable)
        learning_rate = keras.ops.cast(learning_rate, variable.dtype)
        if multiplier != 1.0:
            learning_rate = learning_rate * multiplier
        if self.weight_decay is not None and self._use_weight_decay(variable):
            decay = keras.ops.cast(self.weight_decay, variable.dtype)
            self.assign_sub(variable, variable * decay * learning_rate)
        super().update_step(gradient, variable, learning_rate)


def make_layerwise_decay_optimizer(
    trainable_variables,
    multipliers,
    config,
    *,
    total_steps,
    precision="float32",
):
    """`make_optimizer`'s AdamW + `WarmupCosineDecay`, with a learning-rate multiplier per variable.

    Same rules as `florence_keras.training.make_optimizer` (no weight decay on
    `config.excluded_variables(trainable_variables)`, a `LossScaleOptimizer` for "mixed_float16", built
    here: call inside the strategy scope).

    Args:
        trainable_variables: the model's trainable variables.
        multipliers: floats aligned with `trainable_variables` (see `layerwise_lr_multipliers`).
        config: an `AdamWConfig` (fine-tuning uses `FINETUNE_ADAMW`; no default here, so a fine-tune
            never silently gets pretraining's values).
        total_steps: int, the length of the `WarmupCosineDecay` schedule.
        precision: "float32", "mixed_bfloat16" or "mixed_float16".

    Returns:
        A built `LayerwiseDecayAdamW` (or a `LossScaleOptimizer` wrapping one).
    """
    trainable_variables = list(trainable_variables)
    optimizer = make_optimizer(trainable_variables, config, total_steps=total_steps, precision=precision,
                               optimizer_class=LayerwiseDecayAdamW)
    inner = optimizer.inner_optimizer if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else optimizer
    inner.set_learning_rate_multipliers(trainable_variables, multipliers)
    return optimizer


def backbone_lr_multipliers(model, backbone_multiplier, variables=None):
    """Per-variable multipliers for a Task on a pretrained backbone: `backbone_multiplier` for the variables of
    `model.backbone` (both encoders, their projections), 1.0 for the rest (new heads, a fusion stack).

    METER's per-module rates [METER's VQA fine-tuning config: base rate 5e-6 for the encoders,
    `lr_mult_cross_modal=5` for the fusion, `lr_mult_head=50` for the head; here the fusion and the head share one
    rate]: the pretrained encoders move slower than the layers trained from scratch, so fine-tuning does not wash
    out what pretraining learned before the new layers can read it.

    Args:
        model: a Task with a `backbone` attribute.
        backbone_multiplier: float in (0, 1].
        variables: the variables to report, in order; defaults to `model.trainable_variables`.

    Returns:
        A list of floats aligned with `variables`.

    Example:

    >>> class Task(keras.Model):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.backbone, self.head = keras.layers.Dense(2), keras.layers.Dense(1)
    >>> task = Task()
    >>> task.backbone.build((None, 3)); task.head.build((None, 2))
    >>> backbone_lr_multipliers(task, 0.1, task.backbone.trainable_variables + task.head.trainable_variables)
    [0.1, 0.1, 1.0, 1.0]
    """
    if not 0 < backbone_multiplier <= 1:
        raise ValueError(
            f"`backbone_multiplier` must be in (0, 1]. Received: backbone_multiplier={backbone_multiplier}")
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        raise ValueError(f"{type(model).__name__} has no `backbone`.")
    variables = list(model.trainable_variables if variables is None else variables)
    in_backbone = {id(v) for v in backbone.weights}
    return [float(backbone_multiplier) if id(v) in in_backbone else 1.0 for v in variables]

"""`FineTuneTrainer`: `UniCLTrainer` with layer-wise learning-rate decay and fine-tuning's AdamW."""

from florence_keras.training.layerwise_lr_decay import layerwise_lr_multipliers
from florence_keras.training.layerwise_lr_decay import make_layerwise_decay_optimizer
from florence_keras.training.optimizer_factory import FINETUNE_ADAMW
from florence_keras.training.unicl_trainer import UniCLTrainer


class FineTuneTrainer(UniCLTrainer):
    """Fine-tuning on pretraining's code path (strategies, precision, checkpoints, exact resume).

    The Task brings its loss: a `FlorenceImageClassifier` trains with UniCL over class-name prompts
    (`head="unicl"`, Florence's, SPEC §4) or with softmax cross-entropy (`head="linear"`); a `FlorenceCLIP`
    with UniCL. The optimizer is AdamW + warm-up cosine with layer-wise learning-rate decay
    (`layerwise_lr_multipliers`, `LayerwiseDecayAdamW`); `layer_decay=1.0` is plain AdamW. Its
    hyper-parameters default to `FINETUNE_ADAMW` (BEiT / Swin fine-tuning's), not pretraining's.

    Args:
        model_fn, make_dataset: as for `UniCLTrainer` (model_fn returns the Task to fine-tune).
        layer_decay: float in (0, 1]. Defaults to 1.0 (no decay).
        optimizer: an `AdamWConfig`. Defaults to `FINETUNE_ADAMW`.
        **kwargs: `UniCLTrainer` keyword arguments (`model_dir`, `total_steps`, `global_batch_size`, ...).
    """

    def __init__(self, model_fn, make_dataset, *, layer_decay=1.0, optimizer=None, **kwargs):
        if not 0 < layer_decay <= 1:
            raise ValueError(f"`layer_decay` must be in (0, 1]. Received: layer_decay={layer_decay}")
        if "optimizer_fn" in kwargs:
            raise ValueError("FineTuneTrainer builds its own layer-wise decay optimizer; `optimizer_fn` is not "
                             "accepted (give `optimizer=AdamWConfig(...)` and `layer_decay`).")
        self.layer_decay = layer_decay
        self.lr_multipliers = None

        def optimizer_fn(variables, config, *, total_steps, precision):
            # Called by UniCLTrainer inside the strategy scope, once the model exists.
            self.lr_multipliers = layerwise_lr_multipliers(self.model, layer_decay, variables)
            return make_layerwise_decay_optimizer(variables, self.lr_multipliers, config, total_steps=total_steps,
                                                  precision=precision)

        super().__init__(model_fn, make_dataset, optimizer=FINETUNE_ADAMW if optimizer is None else optimizer,
                         optimizer_fn=optimizer_fn, **kwargs)

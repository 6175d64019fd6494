"""`FineTuneTrainer`: `UniCLTrainer` with layer-wise learning-rate decay and an optional cross-entropy head."""

import os

from florence_keras.training.layerwise_lr_decay import layerwise_lr_multipliers
from florence_keras.training.layerwise_lr_decay import make_layerwise_decay_optimizer
from florence_keras.training.linear_head_classifier import CrossEntropyGradients
from florence_keras.training.training_checkpoint import TrainingCheckpoint
from florence_keras.training.unicl_trainer import UniCLTrainer

HEADS = ("unicl", "linear")


class FineTuneTrainer(UniCLTrainer):
    """Classification fine-tuning on pretraining's code path (strategies, precision, checkpoints, exact resume).

    * `head="unicl"` (Florence, SPEC §4): the model is the FlorenceBackbone and the loss is pretraining's UniCL
      loss; the data are image-label batches whose texts are class names in prompt templates and whose labels
      are class hash keys, so all images of a class are positives of each other and of its prompts.
    * `head="linear"`: the model is a `LinearHeadClassifier`, the labels are class indices and the loss is
      softmax cross-entropy (`CrossEntropyGradients`).

    Both use AdamW + warm-up cosine with layer-wise learning-rate decay (`layerwise_lr_multipliers`,
    `LayerwiseDecayAdamW`); `layer_decay=1.0` is plain AdamW.

    Implementation note: `UniCLTrainer` builds its optimizer and checkpoint in `__init__` and has no hook for
    another optimizer or loss, so this subclass replaces `optimizer` and `checkpoint` right after construction
    (before anything is traced or restored) and, for the linear head, installs its loss through the trainer's
    `_gradient_cache` slot (a callable `(batch, scale_loss) -> (loss, gradients)`). The trainer's first
    optimizer is discarded unused (its slots cost one model's worth of memory twice until garbage-collected).

    Args:
        model_fn, make_dataset: as for `UniCLTrainer`; for `head="linear"` model_fn returns a
            `LinearHeadClassifier` and the dataset's labels are class indices.
        head: "unicl" or "linear".
        layer_decay: float in (0, 1]. Defaults to 1.0 (no decay).
        **kwargs: `UniCLTrainer` keyword arguments (`model_dir`, `total_steps`, `global_batch_size`, ...).
            `chunk_size` (gradient cache) is UniCL-only.
    """

    def __init__(self, model_fn, make_dataset, *, head="unicl", layer_decay=1.0, **kwargs):
        if head not in HEADS:
            raise ValueError(f"`head` must be one of {HEADS}. Received: head={head!r}")
        if not 0 < layer_decay <= 1:
            raise ValueError(f"`layer_decay` must be in (0, 1]. Received: layer_decay={layer_decay}")
        if head == "linear" and kwargs.get("chunk_size"):
            raise ValueError("The gradient cache (`chunk_size`) applies to the UniCL head only. "
                             f"Received: head='linear', chunk_size={kwargs['chunk_size']}")
        super().__init__(model_fn, make_dataset, **kwargs)
        self.head = head
        self.layer_decay = layer_decay
        defaults = {"peak_learning_rate": 5e-4, "warmup_steps": 0, "end_learning_rate": 0.0, "weight_decay": 0.1,
                    "beta_1": 0.9, "beta_2": 0.98, "epsilon": 1e-6, "no_decay_names": ()}  # UniCLTrainer's
        settings = {name: kwargs.get(name, default) for name, default in defaults.items()}
        variables = self.model.trainable_variables
        self.lr_multipliers = layerwise_lr_multipliers(self.model, layer_decay, variables)
        with self.strategy.scope():
            self.optimizer = make_layerwise_decay_optimizer(
                variables, self.lr_multipliers, total_steps=self.total_steps, precision=self.precision, **settings
            )
        self.checkpoint = TrainingCheckpoint(
            os.path.join(self.model_dir, "checkpoints"), self.model, self.optimizer, self.strategy,
            max_to_keep=kwargs.get("max_checkpoints", 3),
        )
        if head == "linear":
            self._gradient_cache = CrossEntropyGradients(self.model, self.global_batch_size)

"""`FineTuneTrainer`: `UniCLTrainer` with layer-wise learning-rate decay and an optional cross-entropy head."""

from florence_keras.training.layerwise_lr_decay import layerwise_lr_multipliers
from florence_keras.training.layerwise_lr_decay import make_layerwise_decay_optimizer
from florence_keras.training.linear_head_classifier import CrossEntropyGradients
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

    Both plug into `UniCLTrainer` through its `optimizer_fn` and `gradients_fn` hooks: the loop, strategies,
    precision, checkpoints and resume are pretraining's.

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
        self.head = head
        self.layer_decay = layer_decay
        self.lr_multipliers = None

        def optimizer_fn(variables, **settings):
            # Called by UniCLTrainer inside the strategy scope, once the model exists.
            self.lr_multipliers = layerwise_lr_multipliers(self.model, layer_decay, variables)
            return make_layerwise_decay_optimizer(variables, self.lr_multipliers, **settings)

        gradients_fn = None
        if head == "linear":
            global_batch_size = kwargs.get("global_batch_size")

            def gradients_fn(model):
                return CrossEntropyGradients(model, global_batch_size)

        super().__init__(model_fn, make_dataset, optimizer_fn=optimizer_fn, gradients_fn=gradients_fn, **kwargs)

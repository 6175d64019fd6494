"""`LinearHeadClassifier`: a FlorenceBackbone's image tower with a plain Dense head (the `--head=linear` fine-tune)."""

import keras
import tensorflow as tf


class LinearHeadClassifier(keras.Model):
    """Logits = Dense(pooled CoSwin features): the conventional fine-tuning head, next to Florence's UniCL head.

    The head reads the image encoder's `pooled_output` (after its final norm, before the CLIP projection), as
    Swin / BEiT fine-tuning does. The text tower, both projections and the logit scale are frozen (the head does
    not use them). The head's kernel starts at zero [ours; BEiT scales a small random init by 0.001], so the first
    logits are all equal and the initial loss is log(num_classes).

    The model keeps the FlorenceBackbone contract (`embed_images`, `embed_texts`, `log_logit_scale`) by delegation,
    so `UniCLTrainer`'s checks, logging and checkpoints treat it like the backbone; the loss it trains with is
    `CrossEntropyGradients`'.

    Args:
        backbone: a built `FlorenceBackbone`.
        num_classes: int > 0.
        **kwargs: `keras.Model` arguments (`name`, ...).

    Example:

    >>> import numpy as np
    >>> from florence_keras.models import presets
    >>> backbone = presets.build_backbone(presets.architecture_config("florence_mini", image_size=32))
    >>> classifier = LinearHeadClassifier(backbone, num_classes=3)
    >>> tuple(classifier.classify(np.zeros((2, 32, 32, 3), "float32")).shape)
    (2, 3)
    """

    def __init__(self, backbone, num_classes, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes <= 0:
            raise ValueError(f"`num_classes` must be a positive int. Received: num_classes={num_classes!r}")
        self.backbone = backbone
        self.num_classes = num_classes
        for frozen in (backbone.text_encoder, backbone.text_projection, backbone.image_projection,
                       backbone.logit_scale_layer):
            frozen.trainable = False
        feature_dim = int(backbone.image_projection.kernel.shape[0])
        # float32 logits under any mixed-precision policy (the loss is float32).
        self.head = keras.layers.Dense(num_classes, kernel_initializer="zeros", dtype="float32", name="head")
        self.head.build((None, feature_dim))
        self.built = True

    def pooled_features(self, images, training=False):
        """The image encoder's pooled output `(B, C)` for normalised images."""
        encoder = self.backbone.image_encoder
        if hasattr(encoder, "forward_features") and tuple(images.shape[1:]) != tuple(encoder.input.shape[1:]):
            return encoder.forward_features(images, training=training)["pooled_output"]
        return encoder(images, training=training)["pooled_output"]

    def classify(self, images, training=False):
        """float32 logits `(B, num_classes)` for normalised images."""
        return self.head(keras.ops.cast(self.pooled_features(images, training=training), "float32"))

    def call(self, images, training=False):
        return self.classify(images, training=training)

    # The FlorenceBackbone contract, delegated.
    def embed_images(self, images, training=False):
        return self.backbone.embed_images(images, training=training)

    def embed_texts(self, token_ids, training=False):
        return self.backbone.embed_texts(token_ids, training=training)

    @property
    def log_logit_scale(self):
        return self.backbone.log_logit_scale

    @property
    def logit_scale_max(self):
        return self.backbone.logit_scale_max


class CrossEntropyGradients:
    """`(loss, gradients)` of softmax cross-entropy for a `LinearHeadClassifier`, in `GradientCache`'s interface.

    Labels are class indices (int64). The loss is this replica's share Σ_{local} ℓ_i / global_batch_size, the
    convention of `unicl_loss` and `tf.nn.compute_average_loss`: summing the replicas' losses gives the global
    mean and summing their gradients (the optimizer's all-reduce) its gradient.

    Args:
        model: a `LinearHeadClassifier`.
        global_batch_size: int, the batch over all replicas.
    """

    def __init__(self, model, global_batch_size):
        if not hasattr(model, "classify"):
            raise ValueError(f"`model` must have `classify(images, training)`. Received: {type(model).__name__}")
        self.model = model
        self.global_batch_size = global_batch_size

    def __call__(self, batch, scale_loss=None):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.model.classify(batch["images"], training=True)
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batch["labels"], logits=logits)
            loss = tf.reduce_sum(per_example) / float(self.global_batch_size)
            scaled = scale_loss(loss) if scale_loss is not None else loss
        return loss, tape.gradient(scaled, variables)

"""`ClassEmbeddingHead`: logits `s · u Cᵀ` of unit-norm image embeddings against class text embeddings."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="florence_keras")
class ClassEmbeddingHead(keras.layers.Layer):
    """Florence's classification head: the class-name text embeddings are the classifier (SPEC §4).

    Holds `class_embeddings` `[num_classes, embedding_dim]`, a non-trainable float32 weight with unit-norm
    rows (prompt-ensembled text embeddings of the class names, see `prompt_ensemble_embeddings`). It is set
    from the text tower with `set_class_embeddings`, not learned by gradient: training moves the text tower,
    and the owner re-embeds the class names afterwards. Until set, the rows are zero (every logit 0).

    Args:
        num_classes: int > 0.
        embedding_dim: int > 0, the shared image-text embedding width.
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: a list `[embeddings, logit_scale]`: unit-norm image embeddings `(B, embedding_dim)` and the
            scalar logit scale s.

    Returns:
        float32 logits `(B, num_classes)` = s · embeddings · class_embeddingsᵀ.

    Example:
    >>> head = ClassEmbeddingHead(2, 2)
    >>> head.build(None)
    >>> head.set_class_embeddings(np.eye(2, dtype="float32"))
    >>> np.asarray(head([np.array([[0.6, 0.8]], "float32"), np.float32(10.0)])).round(3).tolist()
    [[6.0, 8.0]]
    """

    def __init__(self, num_classes, embedding_dim, **kwargs):
        kwargs["dtype"] = "float32"  # logits and the class table stay float32 under mixed precision
        super().__init__(**kwargs)
        for name, value in (("num_classes", num_classes), ("embedding_dim", embedding_dim)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
        self.num_classes = num_classes
        self.embedding_dim = embedding_dim

    def build(self, input_shape=None):
        self.class_embeddings = self.add_weight(
            name="class_embeddings", shape=(self.num_classes, self.embedding_dim), initializer="zeros",
            trainable=False, dtype="float32")
        self.built = True

    def call(self, inputs):
        embeddings, logit_scale = inputs
        embeddings = ops.cast(embeddings, "float32")
        return ops.cast(logit_scale, "float32") * ops.matmul(embeddings, ops.transpose(self.class_embeddings))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.num_classes)

    def set_class_embeddings(self, class_embeddings):
        """Assigns `[num_classes, embedding_dim]` unit-norm rows (checked)."""
        values = np.asarray(class_embeddings, dtype=np.float32)
        if values.shape != (self.num_classes, self.embedding_dim):
            raise ValueError(
                f"`class_embeddings` must have shape {(self.num_classes, self.embedding_dim)}. "
                f"Received: {values.shape}")
        norms = np.linalg.norm(values, axis=1)
        if not np.all(np.isfinite(values)) or np.max(np.abs(norms - 1.0)) > 1e-3:
            raise ValueError(f"`class_embeddings` rows must be finite and unit-norm. Received norms {norms[:5]}")
        self.class_embeddings.assign(values)

    def is_set(self):
        """Whether the class embeddings were set (a zero row is never a valid class embedding)."""
        return bool(np.all(np.any(np.asarray(self.class_embeddings) != 0, axis=1)))

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "embedding_dim": self.embedding_dim})
        config.pop("dtype", None)
        return config

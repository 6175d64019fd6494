"""`MaskedLMHead`: BERT's MLM prediction head (transform, then a decoder over the token vocabulary)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="florence_keras")
class MaskedLMHead(keras.layers.Layer):
    """`logits = decoder(LayerNorm(GELU(Dense(hidden))))` (BERT's `BertLMPredictionHead`, METER's `MLMHead`).

    Tied (`tied=True`, the default): the transform maps to the token embedding's width `embedding_dim` and the
    decoder is the text encoder's token-embedding matrix `E` `(V, embedding_dim)`, passed at call time, plus an own
    bias: `logits = h · Eᵀ + b` (BERT ties it; METER's head is untied). Chosen here because the CLIP vocabulary is
    49,408 ids: an untied decoder would add `V × width` weights that the small CPU configs could not train, while
    `E` already maps ids to the text encoder's space. Untied (`tied=False`): an own `Dense(V)`.

    Args:
        vocabulary_size: int, `V`.
        embedding_dim: int, the transform's output width (tied: the token embedding's width).
        tied: bool. Defaults to True.
        layer_norm_epsilon: float. Defaults to 1e-12 (BERT).
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        hidden: `(..., D)` fused text states at the predicted positions.
        embeddings: `(V, embedding_dim)` the token-embedding matrix (tied only; required then).

    Returns:
        float32 logits `(..., V)`.

    Example:
    >>> import numpy as np
    >>> head = MaskedLMHead(vocabulary_size=10, embedding_dim=4)
    >>> tuple(head(np.zeros((2, 3, 8), "float32"), np.zeros((10, 4), "float32")).shape)
    (2, 3, 10)
    """

    def __init__(self, vocabulary_size, embedding_dim, tied=True, layer_norm_epsilon=1e-12, **kwargs):
        if not isinstance(vocabulary_size, int) or vocabulary_size < 2:
            raise ValueError(f"`vocabulary_size` must be an int >= 2. Received: vocabulary_size={vocabulary_size!r}")
        if not isinstance(embedding_dim, int) or embedding_dim < 1:
            raise ValueError(f"`embedding_dim` must be a positive int. Received: embedding_dim={embedding_dim!r}")
        super().__init__(**kwargs)
        policy = dict(dtype=self.dtype_policy)
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.transform = keras.layers.Dense(embedding_dim, kernel_initializer=init, name="transform", **policy)
        self.norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="norm", **policy)
        self.decoder = None if tied else keras.layers.Dense(vocabulary_size, kernel_initializer=init,
                                                            name="decoder", dtype="float32")
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.tied = bool(tied)
        self.layer_norm_epsilon = float(layer_norm_epsilon)

    def build(self, hidden_shape, embeddings_shape=None):
        self.transform.build(hidden_shape)
        transformed = tuple(hidden_shape[:-1]) + (self.embedding_dim,)
        self.norm.build(transformed)
        if self.tied:
            self.bias = self.add_weight(shape=(self.vocabulary_size,), initializer="zeros", name="bias",
                                        dtype="float32")
        else:
            self.decoder.build(transformed)
        self.built = True

    def call(self, hidden, embeddings=None):
        states = self.norm(keras.activations.gelu(self.transform(hidden), approximate=False))
        if not self.tied:
            return ops.cast(self.decoder(ops.cast(states, "float32")), "float32")
        if embeddings is None:
            raise ValueError("A tied MaskedLMHead needs the token-embedding matrix `embeddings` (V, embedding_dim).")
        logits = ops.matmul(ops.cast(states, "float32"), ops.transpose(ops.cast(embeddings, "float32")))
        return logits + self.bias

    def compute_output_shape(self, hidden_shape, embeddings_shape=None):
        return tuple(hidden_shape[:-1]) + (self.vocabulary_size,)

    def get_config(self):
        config = super().get_config()
        config.update({"vocabulary_size": self.vocabulary_size, "embedding_dim": self.embedding_dim,
                       "tied": self.tied, "layer_norm_epsilon": self.layer_norm_epsilon})
        return config

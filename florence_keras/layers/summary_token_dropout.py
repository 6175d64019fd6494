"""Drops a token stream's first (summary) token per example while training."""

import keras
from keras import ops

from florence_keras.layers.example_window import per_example_uniform


@keras.saving.register_keras_serializable(package="florence_keras")
class SummaryTokenDropout(keras.layers.Layer):
    """Zeroes the first token of `(B, L, D)` tokens for a random fraction `rate` of the examples, in training.

    A fusion stream's pooler reads its first token. When that token already summarises the whole input (the text
    stream's first token is the causal text encoder's end-token state, `fusion_tokens.text_tokens`), the fusion
    can answer from it alone and never learn to read the other tokens, and a summary of a phrase never seen in
    training (an unseen attribute-object pair) then decides the answer by itself. Zeroing the summary for some
    examples makes the first position gather the input from the other tokens through attention. The other tokens
    are unchanged and nothing is rescaled (unlike dropout: the token is replaced, not thinned). At inference it is
    the identity.

    Inside an `example_window` the per-example decisions are rows of a draw for the whole global batch, so they do
    not depend on how the batch is split over replicas or gradient-cache chunks (as `DropPath`).

    Args:
        rate: float in `[0, 1]`, the probability that an example's first token is zeroed.
        seed: optional int for the random generator.

    Example:
    >>> import numpy as np
    >>> tokens = np.ones((1, 3, 2), "float32")
    >>> np.asarray(SummaryTokenDropout(1.0)(tokens, training=True))[0].tolist()
    [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"`rate` must be a float in [0, 1]. Received: rate={rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.rate else None

    def call(self, tokens, training=None):
        if not training or self.rate == 0.0:
            return tokens
        rows = ops.shape(tokens)[0]
        noise = per_example_uniform(rows, self.seed_generator)
        keep = ops.cast(ops.reshape(noise >= self.rate, (rows, 1, 1)), tokens.dtype)
        return ops.concatenate([tokens[:, :1] * keep, tokens[:, 1:]], axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config

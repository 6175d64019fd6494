"""Florence's text encoder: a CLIP-style causal transformer pooled at end-of-text."""

import keras
from keras import ops
from keras_hub.layers import TokenAndPositionEmbedding
from keras_hub.models import Backbone

# keras-hub's CLIP block is exactly the CLIP text block; it has no public name
# (see keras_hub_internals for why we reuse it rather than rewrite it).
from florence_keras.models.keras_hub_internals import CLIPEncoderLayer

ACTIVATIONS = ("quick_gelu", "gelu")


def check_sequence_length(token_ids, max_sequence_length):
    """Raises a `ValueError` when token ids `(B, L)` are longer than the context.

    Only static lengths can be checked here (eager calls, JAX, and graphs
    traced with a known length); a graph traced with an unknown length fails
    in the position embedding instead.
    """
    shape = getattr(token_ids, "shape", None)
    if shape is None or len(shape) != 2:
        raise ValueError(
            "Token ids must be a 2-D int tensor (batch, sequence_length). "
            f"Received shape: {None if shape is None else tuple(shape)}"
        )
    length = shape[1]
    if length is not None and int(length) > max_sequence_length:
        raise ValueError(
            f"Token ids are longer than the text encoder's context: {int(length)} > "
            f"max_sequence_length={max_sequence_length}. Truncate them (the preprocessor "
            "packs texts to this length)."
        )


@keras.saving.register_keras_serializable(package="florence_keras")
class EndOfTextPooler(keras.layers.Layer):
    """Picks each sequence's hidden state at its first end-of-text token.

    Sequences without an end-of-text token (ids given by the caller without the
    tokenizer) fall back to the position of the largest id, CLIP's original rule
    (the end token has the largest id of the CLIP vocabulary).

    Args:
        eos_token_id: int, id of the end-of-text token.
    """

    def __init__(self, eos_token_id, **kwargs):
        super().__init__(**kwargs)
        self.eos_token_id = eos_token_id

    def call(self, hidden_states, token_ids):
        is_eos = ops.equal(token_ids, self.eos_token_id)
        first_eos = ops.cast(ops.argmax(ops.cast(is_eos, "int32"), axis=-1), "int32")
        fallback = ops.cast(ops.argmax(token_ids, axis=-1), "int32")
        index = ops.where(ops.any(is_eos, axis=-1), first_eos, fallback)
        # A gather of rows of the flattened (B * L, D) states, in int32: exact, and no int64 index arithmetic
        # (`take_along_axis` makes int64 products, which TensorFlow's oneDNN path logs an error about on CPUs
        # without AVX-512).
        shape = ops.shape(hidden_states)
        rows = ops.arange(shape[0], dtype="int32") * ops.cast(shape[1], "int32") + index
        return ops.take(ops.reshape(hidden_states, (-1, hidden_states.shape[-1])), rows, axis=0)

    def compute_output_shape(self, hidden_states_shape, token_ids_shape):
        return (hidden_states_shape[0], hidden_states_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"eos_token_id": self.eos_token_id})
        return config


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceTextEncoder(Backbone):
    """A 12-layer-style causal transformer text encoder (CLIP's text tower).

    Token + learned position embeddings, `num_layers` pre-LayerNorm blocks with
    a causal mask, a final LayerNorm, and pooling at the end-of-text token.

    Takes int token ids `(B, L)` for any `L <= max_sequence_length` (like
    keras-hub's and transformers' text encoders): padding to a fixed length is
    the preprocessor's job, not the model's. Because attention is causal and the
    output is pooled at the first end-of-text token, a sequence cut anywhere
    after its end token gives the same `"pooled_output"` as the padded one.
    Longer sequences raise a `ValueError` naming the context length.

    Outputs a dict: `"sequence_output"` `(B, L, hidden_dim)` and
    `"pooled_output"` `(B, hidden_dim)`.

    Args:
        vocabulary_size: int. Defaults to `49408` (the CLIP BPE vocabulary).
        hidden_dim: int, the width.
        num_layers: int.
        num_heads: int.
        intermediate_dim: int, MLP width. Defaults to `4 * hidden_dim`.
        max_sequence_length: int. Defaults to `77`.
        activation: `"quick_gelu"` (CLIP) or `"gelu"`.
        layer_norm_epsilon: float of the final LayerNorm. Defaults to `1e-5`.
        eos_token_id: int. Defaults to `49407`.
        dtype: optional dtype policy.

    Example:
    >>> import numpy as np
    >>> encoder = FlorenceTextEncoder(vocabulary_size=10, hidden_dim=8,
    ...     num_layers=1, num_heads=2, max_sequence_length=5, eos_token_id=9)
    >>> out = encoder(np.array([[1, 2, 9, 0, 0]]))
    >>> tuple(out["pooled_output"].shape)
    (1, 8)
    >>> tuple(encoder(np.array([[1, 2, 9]]))["sequence_output"].shape)
    (1, 3, 8)
    """

    def __init__(
        self,
        hidden_dim,
        num_layers,
        num_heads,
        vocabulary_size=49408,
        intermediate_dim=None,
        max_sequence_length=77,
        activation="quick_gelu",
        layer_norm_epsilon=1e-5,
        eos_token_id=49407,
        dtype=None,
        **kwargs,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"`activation` must be one of {ACTIVATIONS}. Received: activation={activation!r}"
            )
        if hidden_dim % num_heads:
            raise ValueError(
                "`hidden_dim` must be divisible by `num_heads`. "
                f"Received: hidden_dim={hidden_dim}, num_heads={num_heads}"
            )
        if not 0 <= eos_token_id < vocabulary_size:
            raise ValueError(
                f"`eos_token_id` must be a valid id below vocabulary_size={vocabulary_size}. "
                f"Received: eos_token_id={eos_token_id}"
            )
        intermediate_dim = intermediate_dim or 4 * hidden_dim

        # === Layers ===
        self.embedding = TokenAndPositionEmbedding(
            vocabulary_size=vocabulary_size,
            sequence_length=max_sequence_length,
            embedding_dim=hidden_dim,
            dtype=dtype,
            name="embedding",
        )
        self.encoder_layers = [
            CLIPEncoderLayer(
                hidden_dim, num_heads, intermediate_dim, activation,
                use_causal_mask=True, dtype=dtype, name=f"block_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm"
        )
        self.pooler = EndOfTextPooler(eos_token_id, dtype=dtype, name="pooler")

        # === Functional model ===
        # Any length up to the context: the position embedding is sliced to `L`.
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        x = self.embedding(token_ids)
        for block in self.encoder_layers:
            x = block(x)
        sequence_output = self.final_norm(x)
        pooled = self.pooler(sequence_output, token_ids)
        super().__init__(
            inputs=token_ids,
            outputs={"sequence_output": sequence_output, "pooled_output": pooled},
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.max_sequence_length = max_sequence_length
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.eos_token_id = eos_token_id
        self.output_dim = hidden_dim

    def call(self, inputs, training=None, mask=None):
        check_sequence_length(inputs, self.max_sequence_length)
        return super().call(inputs, training=training, mask=mask)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "max_sequence_length": self.max_sequence_length,
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "eos_token_id": self.eos_token_id,
            }
        )
        return config

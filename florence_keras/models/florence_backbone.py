"""The Florence dual encoder: CoSwin + text encoder + projections + logit scale."""

import math

import keras
from keras import layers
from keras import ops
from keras_hub.models import Backbone


@keras.saving.register_keras_serializable(package="florence_keras")
class L2Normalize(layers.Layer):
    """L2-normalises the last axis in float32 (safe under mixed precision)."""

    def __init__(self, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        norm = ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), self.epsilon))
        return x / norm

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="florence_keras")
class LogitScale(layers.Layer):
    """The learnable temperature `s = exp(min(log_scale, log(max_value)))`.

    Args:
        initial_value: float, the initial scale `s` (CLIP: `1 / 0.07`).
        max_value: float, the clip on `s` (CLIP: `100`).

    Call arguments:
        inputs: any tensor; only used to place the layer in a functional graph.

    Returns:
        a float32 scalar.
    """

    def __init__(self, initial_value=1 / 0.07, max_value=100.0, **kwargs):
        super().__init__(**kwargs)
        if initial_value <= 0 or max_value <= 0:
            raise ValueError(
                "`initial_value` and `max_value` must be positive. Received: "
                f"initial_value={initial_value}, max_value={max_value}"
            )
        self.initial_value = initial_value
        self.max_value = max_value

    def build(self, input_shape=None):
        self.log_logit_scale = self.add_weight(
            name="log_logit_scale",
            shape=(),
            initializer=keras.initializers.Constant(math.log(self.initial_value)),
            dtype="float32",
            autocast=False,
        )
        self.built = True

    def call(self, inputs=None):
        value = ops.minimum(self.log_logit_scale, math.log(self.max_value))
        return ops.exp(value)

    def compute_output_spec(self, inputs=None):
        return keras.KerasTensor((), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({"initial_value": self.initial_value, "max_value": self.max_value})
        return config


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceBackbone(Backbone):
    """Florence's image-text dual encoder as one functional Keras backbone.

    `image_encoder` (a `CoSwinBackbone`, or any backbone returning a
    `"pooled_output"`) and `text_encoder` (a `FlorenceTextEncoder`) are each
    followed by a linear projection without bias to `projection_dim` and L2
    normalisation. The model returns features and the logit scale only: no
    in-batch logits, because the UniCL loss gathers embeddings across replicas
    (`florence_keras.losses`).

    Inputs: `{"images": float (B, H, W, 3) normalised, "token_ids": int (B, L)}`.
    Outputs: `{"image_embeddings": (B, P), "text_embeddings": (B, P)}` (float32,
    unit norm) and `"logit_scale"` (float32 scalar).

    Args:
        image_encoder: a `keras_hub.models.Backbone` with a `"pooled_output"`.
        text_encoder: a `keras_hub.models.Backbone` with a `"pooled_output"`.
        projection_dim: int, the shared embedding width.
        logit_scale_init: float. Defaults to `1 / 0.07`.
        logit_scale_max: float. Defaults to `100`.
        dtype: optional dtype policy.

    Example:
    >>> import numpy as np
    >>> from florence_keras.models.coswin_backbone import CoSwinBackbone
    >>> from florence_keras.models.florence_text_encoder import FlorenceTextEncoder
    >>> backbone = FlorenceBackbone(
    ...     CoSwinBackbone(embed_dim=8, depths=[1, 2], num_heads=[1, 2], window_size=2,
    ...                    image_shape=(32, 32, 3)),
    ...     FlorenceTextEncoder(vocabulary_size=10, hidden_dim=8, num_layers=1, num_heads=2,
    ...                         max_sequence_length=5, eos_token_id=9),
    ...     projection_dim=4)
    >>> sorted(backbone.output.keys())
    ['image_embeddings', 'logit_scale', 'text_embeddings']
    >>> out = backbone({"images": np.zeros((1, 32, 32, 3), "float32"),
    ...                 "token_ids": np.array([[1, 2, 9, 0, 0]])})
    >>> tuple(out["image_embeddings"].shape), tuple(out["text_embeddings"].shape)
    ((1, 4), (1, 4))
    """

    def __init__(
        self,
        image_encoder,
        text_encoder,
        projection_dim,
        logit_scale_init=1 / 0.07,
        logit_scale_max=100.0,
        dtype=None,
        **kwargs,
    ):
        if projection_dim <= 0:
            raise ValueError(
                f"`projection_dim` must be positive. Received: projection_dim={projection_dim}"
            )
        # === Layers ===
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.image_projection = layers.Dense(
            projection_dim, use_bias=False, dtype=dtype, name="image_projection"
        )
        self.text_projection = layers.Dense(
            projection_dim, use_bias=False, dtype=dtype, name="text_projection"
        )
        self.image_normalize = L2Normalize(dtype=dtype, name="image_normalize")
        self.text_normalize = L2Normalize(dtype=dtype, name="text_normalize")
        self.logit_scale_layer = LogitScale(
            logit_scale_init, logit_scale_max, dtype=dtype, name="logit_scale"
        )

        # === Functional model ===
        image_shape = tuple(image_encoder.input.shape[1:])
        images = keras.Input(shape=image_shape, name="images")
        # Any length up to the text encoder's context, as the text encoder takes.
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        image_embeddings = self._embed_images(images)
        text_embeddings = self._embed_texts(token_ids)
        logit_scale = self.logit_scale_layer(image_embeddings)
        super().__init__(
            inputs={"images": images, "token_ids": token_ids},
            outputs={
                "image_embeddings": image_embeddings,
                "text_embeddings": text_embeddings,
                "logit_scale": logit_scale,
            },
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.projection_dim = projection_dim
        self.logit_scale_init = logit_scale_init
        self.logit_scale_max = logit_scale_max

    def _embed_images(self, images, training=None):
        encoder = self.image_encoder
        if hasattr(encoder, "forward_features") and tuple(images.shape[1:]) != tuple(
            encoder.input.shape[1:]
        ):
            # Another resolution than the one the graph was built for: same layers, same weights.
            features = encoder.forward_features(images, training=training)["pooled_output"]
        else:
            features = encoder(images, training=training)["pooled_output"]
        return self.image_normalize(self.image_projection(features))

    def _embed_texts(self, token_ids, training=None):
        features = self.text_encoder(token_ids, training=training)["pooled_output"]
        return self.text_normalize(self.text_projection(features))

    def embed_images(self, images, training=False):
        """Unit-norm image embeddings `(B, projection_dim)` for normalised images."""
        return self._embed_images(images, training=training)

    def embed_texts(self, token_ids, training=False):
        """Unit-norm text embeddings `(B, projection_dim)` for token ids."""
        return self._embed_texts(ops.cast(token_ids, "int32"), training=training)

    @property
    def log_logit_scale(self):
        """The `log_logit_scale` variable (excluded from weight decay)."""
        return self.logit_scale_layer.log_logit_scale

    def logit_scale(self):
        """The current, clipped logit scale as a float32 scalar."""
        return self.logit_scale_layer(None)

    @property
    def image_size(self):
        return tuple(self.image_encoder.input.shape[1:3])

    @property
    def sequence_length(self):
        """The text context length (the longest `token_ids` the model takes)."""
        encoder = self.text_encoder
        return getattr(encoder, "max_sequence_length", None) or encoder.input.shape[1]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_encoder": layers.serialize(self.image_encoder),
                "text_encoder": layers.serialize(self.text_encoder),
                "projection_dim": self.projection_dim,
                "logit_scale_init": self.logit_scale_init,
                "logit_scale_max": self.logit_scale_max,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = config.copy()
        for key in ("image_encoder", "text_encoder"):
            if isinstance(config[key], dict):
                sub = dict(config[key])
                if "dtype" in config and config["dtype"] is not None:
                    sub["config"] = dict(sub["config"], dtype=config["dtype"])
                config[key] = layers.deserialize(sub, custom_objects=custom_objects)
        if "dtype" in config and isinstance(config["dtype"], dict):
            config["dtype"] = keras.dtype_policies.get(config["dtype"])
        return cls(**config)

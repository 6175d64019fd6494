"""`ATSSHead`: ATSS's prediction head, shared by every pyramid level."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="florence_keras")
class ATSSHead(keras.layers.Layer):
    """Class logits, box deltas and centerness for every location of every level (one anchor per location).

    Shared across levels: optional towers of `num_convs` (3×3 conv, GroupNorm, ReLU) for classification and
    for boxes (ATSS without Dynamic Head uses 4), then `kernel_size` convs predicting `num_classes` class
    logits, 4 box deltas (× a learnable per-level scale, initialised at 1) and 1 centerness logit (from the box
    tower, as ATSS). With Dynamic Head in front, the reference has no towers and 1×1 predictors. The class bias
    starts at −log((1 − π)/π) with the prior π = 0.01, so the first focal loss is small (RetinaNet).

    Args:
        num_classes: int > 0.
        channels: int > 0, the input levels' width (the towers keep it).
        num_levels: int > 0, pyramid levels (one box scale each). Defaults to 5.
        num_convs: int >= 0, tower depth. Defaults to 0.
        kernel_size: 1 or 3, the predictors' kernel. Defaults to 1.
        prior_probability: float in (0, 1). Defaults to 0.01.
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: list of `num_levels` maps `(B, H_l, W_l, channels)`, finest first.

    Returns:
        dict of float32 `class_logits` `(B, N, num_classes)`, `box_deltas` `(B, N, 4)`, `centerness` `(B, N)`
        with N = Σ H_l·W_l, levels concatenated in order, each level row-major.

    Example:
    >>> import numpy as np
    >>> head = ATSSHead(num_classes=3, channels=8, num_levels=2)
    >>> out = head([np.zeros((1, 4, 4, 8), "float32"), np.zeros((1, 2, 2, 8), "float32")])
    >>> tuple(out["class_logits"].shape), tuple(out["box_deltas"].shape), tuple(out["centerness"].shape)
    ((1, 20, 3), (1, 20, 4), (1, 20))
    """

    def __init__(self, num_classes, channels, num_levels=5, num_convs=0, kernel_size=1, prior_probability=0.01,
                 **kwargs):
        for name, value in (("num_classes", num_classes), ("channels", channels), ("num_levels", num_levels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
        if not isinstance(num_convs, int) or num_convs < 0:
            raise ValueError(f"`num_convs` must be an int >= 0. Received: num_convs={num_convs!r}")
        if kernel_size not in (1, 3):
            raise ValueError(f"`kernel_size` must be 1 or 3. Received: kernel_size={kernel_size!r}")
        if not 0.0 < prior_probability < 1.0:
            raise ValueError(f"`prior_probability` must be in (0, 1). Received: {prior_probability!r}")
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.channels = channels
        self.num_levels = num_levels
        self.num_convs = num_convs
        self.kernel_size = kernel_size
        self.prior_probability = float(prior_probability)

    def _tower(self, prefix):
        layers = []
        groups = math.gcd(32, self.channels)
        for index in range(self.num_convs):
            layers.append(keras.layers.Conv2D(
                self.channels, 3, padding="same", kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                name=f"{prefix}_conv_{index}", dtype=self.dtype_policy))
            layers.append(keras.layers.GroupNormalization(groups, name=f"{prefix}_norm_{index}",
                                                          dtype=self.dtype_policy))
            layers.append(keras.layers.ReLU(name=f"{prefix}_relu_{index}", dtype=self.dtype_policy))
        return layers

    def build(self, input_shape):
        shape = (None, None, None, self.channels)
        self.class_tower, self.box_tower = self._tower("class"), self._tower("box")
        for layer in self.class_tower + self.box_tower:
            layer.build(shape)
        init = keras.initializers.RandomNormal(stddev=0.01)
        bias = -math.log((1.0 - self.prior_probability) / self.prior_probability)

        def predictor(units, name, bias_value=0.0):
            conv = keras.layers.Conv2D(units, self.kernel_size, padding="same", kernel_initializer=init,
                                       bias_initializer=keras.initializers.Constant(bias_value), name=name,
                                       dtype=self.dtype_policy)
            conv.build(shape)
            return conv

        self.class_predictor = predictor(self.num_classes, "class_logits", bias)
        self.box_predictor = predictor(4, "box_deltas")
        self.centerness_predictor = predictor(1, "centerness")
        self.scales = self.add_weight(name="scales", shape=(self.num_levels,), initializer="ones")
        self.built = True

    def call(self, inputs):
        if len(inputs) != self.num_levels:
            raise ValueError(f"ATSSHead was built for {self.num_levels} levels. Received: {len(inputs)}")
        classes, boxes, centerness = [], [], []
        for index, level in enumerate(inputs):
            class_features, box_features = level, level
            for layer in self.class_tower:
                class_features = layer(class_features)
            for layer in self.box_tower:
                box_features = layer(box_features)
            batch = ops.shape(level)[0]
            classes.append(ops.reshape(self.class_predictor(class_features), (batch, -1, self.num_classes)))
            deltas = self.box_predictor(box_features) * ops.cast(self.scales[index], self.compute_dtype)
            boxes.append(ops.reshape(deltas, (batch, -1, 4)))
            centerness.append(ops.reshape(self.centerness_predictor(box_features), (batch, -1)))
        return {"class_logits": ops.cast(ops.concatenate(classes, axis=1), "float32"),
                "box_deltas": ops.cast(ops.concatenate(boxes, axis=1), "float32"),
                "centerness": ops.cast(ops.concatenate(centerness, axis=1), "float32")}

    def compute_output_shape(self, input_shape):
        total = 0
        for shape in input_shape:
            if shape[1] is None or shape[2] is None:
                total = None
                break
            total += shape[1] * shape[2]
        batch = input_shape[0][0]
        return {"class_logits": (batch, total, self.num_classes), "box_deltas": (batch, total, 4),
                "centerness": (batch, total)}

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "channels": self.channels, "num_levels": self.num_levels,
                       "num_convs": self.num_convs, "kernel_size": self.kernel_size,
                       "prior_probability": self.prior_probability})
        return config

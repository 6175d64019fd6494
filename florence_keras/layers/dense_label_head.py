"""`DenseLabelHead`: per-location class logits for several kinds of labels, finer than the map it reads."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="florence_keras")
class DenseLabelHead(keras.layers.Layer):
    """`depth_to_space(Dense(LayerNorm(map)), sub_cells)`: logits for `sub_cells × sub_cells` sub-blocks per cell.

    Each cell of a `(B, h, w, C)` feature map predicts, for each of its `sub_cells²` sub-blocks (row-major), one
    logit vector per kind of label (`class_counts`, concatenated): the output is `(B, h·s, w·s, sum(class_counts))`
    with `s = sub_cells`, pixel `(h·s + i, w·s + j)` reading channels `(i·s + j)·K ... ` of the Dense output, as
    `tf.nn.depth_to_space` orders them. Used in pretraining to name what is where (`FlorenceDensePretrainer`); the
    head is linear so that what it reads must already be in the map.

    Args:
        class_counts: list of ints, the classes of each kind (e.g. `(3, 9, 9)`: occlusion, shape, colour).
        sub_cells: int >= 1, sub-blocks per side of each cell. Defaults to 4.
        layer_norm_epsilon: float. Defaults to 1e-5.
        **kwargs: `keras.layers.Layer` arguments (the head computes in float32 unless told otherwise).

    Example:
    >>> import numpy as np
    >>> head = DenseLabelHead((3, 9), sub_cells=2)
    >>> tuple(head(np.zeros((1, 2, 2, 8), "float32")).shape)
    (1, 4, 4, 12)
    """

    def __init__(self, class_counts, sub_cells=4, layer_norm_epsilon=1e-5, **kwargs):
        class_counts = tuple(class_counts)
        if not class_counts or any(not isinstance(c, int) or c < 2 for c in class_counts):
            raise ValueError(f"`class_counts` must be a non-empty list of ints >= 2. Received: {class_counts!r}")
        if not isinstance(sub_cells, int) or sub_cells < 1:
            raise ValueError(f"`sub_cells` must be a positive int. Received: sub_cells={sub_cells!r}")
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.class_counts = class_counts
        self.sub_cells = sub_cells
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        policy = dict(dtype=self.dtype_policy)
        self.norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="norm", **policy)
        self.logits = keras.layers.Dense(sub_cells * sub_cells * sum(class_counts), name="logits", **policy)

    def build(self, input_shape):
        self.norm.build(input_shape)
        self.logits.build(input_shape)
        self.built = True

    def call(self, feature_map):
        logits = self.logits(self.norm(ops.cast(feature_map, self.compute_dtype)))
        height, width = feature_map.shape[1], feature_map.shape[2]
        s, k = self.sub_cells, sum(self.class_counts)
        logits = ops.reshape(logits, (-1, height, width, s, s, k))
        logits = ops.transpose(logits, (0, 1, 3, 2, 4, 5))
        return ops.reshape(logits, (-1, height * s, width * s, k))

    def compute_output_shape(self, input_shape):
        s = self.sub_cells
        return (input_shape[0], input_shape[1] * s, input_shape[2] * s, sum(self.class_counts))

    def get_config(self):
        config = super().get_config()
        config.update({"class_counts": list(self.class_counts), "sub_cells": self.sub_cells,
                       "layer_norm_epsilon": self.layer_norm_epsilon})
        return config

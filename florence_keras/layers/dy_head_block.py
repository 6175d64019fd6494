"""`DyHeadBlock`: one Dynamic Head block, spatial -> scale -> task attention on every pyramid level."""

import keras
from keras import ops

from florence_keras.layers.scale_aware_attention import ScaleAwareAttention
from florence_keras.layers.spatial_aware_attention import SpatialAwareAttention
from florence_keras.layers.task_aware_attention import TaskAwareAttention


@keras.saving.register_keras_serializable(package="florence_keras")
class DyHeadBlock(keras.layers.Layer):
    """`out_l = TaskAware(mean_b ScaleAware(branch_b))` over the spatial attention's branches of level l.

    As `DyConv.forward` of microsoft/DynamicHead: the `SpatialAwareAttention` gives 2 branches (end levels) or 3
    (middle levels) on level l's grid; each is gated by the (shared) `ScaleAwareAttention`, the gated branches are
    averaged, and the (shared) `TaskAwareAttention` (dynamic ReLU) is applied. All weights are shared across levels.

    Args:
        norm_groups: int, default 16: GroupNorm groups of the spatial branches.
        reduction: int, default 4: the dynamic ReLU's squeeze.
        **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
        inputs: list of L maps `(B, H_l, W_l, C)`, each level half the previous one (rounded up).

    Returns:
        A list of L maps of the same shapes.

    Example:
    >>> import numpy as np
    >>> block = DyHeadBlock(norm_groups=4)
    >>> [tuple(y.shape) for y in block([np.ones((1, 5, 3, 8), "float32"), np.ones((1, 3, 2, 8), "float32")])]
    [(1, 5, 3, 8), (1, 3, 2, 8)]
    """

    def __init__(self, norm_groups=16, reduction=4, **kwargs):
        super().__init__(**kwargs)
        self.norm_groups = norm_groups
        self.reduction = reduction
        self.spatial = SpatialAwareAttention(norm_groups, name="spatial", dtype=self.dtype_policy)
        self.scale = ScaleAwareAttention(name="scale", dtype=self.dtype_policy)
        self.task = TaskAwareAttention(reduction, name="task", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.spatial.build(input_shape)
        level_shape = (None, None, None, input_shape[0][-1])
        self.scale.build(level_shape)
        self.task.build(level_shape)
        self.built = True

    def call(self, inputs):
        outputs = []
        for branches in self.spatial(list(inputs)):
            gated = [self.scale(branch) for branch in branches]
            outputs.append(self.task(ops.mean(ops.stack(gated, axis=0), axis=0)))
        return outputs

    def compute_output_shape(self, input_shape):
        return [tuple(shape) for shape in input_shape]

    def get_config(self):
        config = super().get_config()
        config.update({"norm_groups": self.norm_groups, "reduction": self.reduction})
        return config

"""`DepthMetric`: one standard depth metric (AbsRel, RMSE, δ<1.25, ...) as a streaming Keras metric."""

import keras
from keras import ops

from florence_keras.losses.depth_gradient_matching import safe_log
from florence_keras.losses.depth_gradient_matching import valid_depth_mask

DEPTH_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")


@keras.saving.register_keras_serializable(package="florence_keras")
class DepthMetric(keras.metrics.Metric):
    """A depth metric in keras ops, for `compile(metrics=...)`: per image over valid pixels, mean over images.

    The same definitions as `florence_keras.evaluation.depth_metrics` (ground truth `> min_depth` and finite is
    valid, the prediction clipped to `[min_depth, max_depth]`, no median scaling): the streaming value equals
    that module's `depth_metrics(...)[kind]` over the images seen.

    Args:
        kind: one of `DEPTH_METRICS`.
        min_depth: float > 0. Defaults to 1e-3.
        max_depth: optional float. Defaults to None.
        name: defaults to `kind`.
    """

    def __init__(self, kind="abs_rel", min_depth=1e-3, max_depth=None, name=None, **kwargs):
        if kind not in DEPTH_METRICS:
            raise ValueError(f"`kind` must be one of {DEPTH_METRICS}. Received: kind={kind!r}")
        if min_depth <= 0 or (max_depth is not None and max_depth <= min_depth):
            raise ValueError(f"Need 0 < min_depth < max_depth. Received: min_depth={min_depth}, max_depth={max_depth}")
        super().__init__(name=name or kind, **kwargs)
        self.kind = kind
        self.min_depth = float(min_depth)
        self.max_depth = None if max_depth is None else float(max_depth)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="count")

    def _per_image(self, g, p, valid):
        n = ops.maximum(ops.sum(valid, axis=(1, 2)), 1.0)

        def mean(x):
            return ops.sum(x * valid, axis=(1, 2)) / n

        g_safe = ops.where(valid > 0, g, 1.0)
        if self.kind == "abs_rel":
            return mean(ops.abs(p - g) / g_safe)
        if self.kind == "sq_rel":
            return mean(ops.square(p - g) / g_safe)
        if self.kind == "rmse":
            return ops.sqrt(mean(ops.square(p - g)))
        if self.kind == "rmse_log":
            return ops.sqrt(mean(ops.square(safe_log(p, valid) - safe_log(g, valid))))
        threshold = 1.25 ** int(self.kind[-1])
        ratio = ops.maximum(p / g_safe, g_safe / p)
        return mean(ops.cast(ratio < threshold, "float32"))

    def update_state(self, y_true, y_pred, sample_weight=None):
        g, p = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
        if len(g.shape) == 4:
            g = g[..., 0]
        if len(p.shape) == 4:
            p = p[..., 0]
        valid = valid_depth_mask(g, self.min_depth)
        if self.max_depth is not None:
            valid = valid * ops.cast(g <= self.max_depth, "float32")
        p = ops.clip(p, self.min_depth, self.max_depth if self.max_depth is not None else 3.0e38)
        scored = ops.cast(ops.sum(valid, axis=(1, 2)) > 0, "float32")
        self.total.assign_add(ops.sum(self._per_image(g, p, valid) * scored))
        self.count.assign_add(ops.sum(scored))

    def result(self):
        return self.total / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        config = super().get_config()
        config.update({"kind": self.kind, "min_depth": self.min_depth, "max_depth": self.max_depth})
        return config

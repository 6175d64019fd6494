"""`ATSSLoss`: the one-stage detector's loss — focal classification, GIoU regression, centerness BCE."""

import keras
from keras import ops

from florence_keras.losses.atss_assigner import atss_assign
from florence_keras.losses.atss_assigner import centerness_targets
from florence_keras.losses.detection_boxes import decode_boxes
from florence_keras.losses.detection_boxes import generalized_iou


@keras.saving.register_keras_serializable(package="florence_keras")
class ATSSLoss:
    """ATSS's training loss (sfzhang15/ATSS, Dynamic Head's ATSS configs), as sums to normalise globally.

    Anchors are assigned by `atss_assign`. Then, over the batch:

    * classification: sigmoid focal loss (α, γ; keras's `binary_focal_crossentropy` with class balancing)
      summed over anchors and classes, / #positives;
    * regression: `box_weight` × Σ_pos (1 − GIoU(decoded box, matched box)) · centerness target
      / Σ_pos centerness targets;
    * centerness: binary cross-entropy of the centerness logit against the centerness target, summed over
      positives, / #positives.

    `terms` returns the numerators and the two denominators so the caller can divide by their totals over
    all replicas (the reference's "avg per GPU" normalisation); `__call__` divides locally.

    Args:
        alpha: float, focal α. Defaults to 0.25.
        gamma: float, focal γ. Defaults to 2.
        box_weight: float, weight of the GIoU term. Defaults to 2.
        top_k: int, ATSS candidates per level. Defaults to 9.
    """

    def __init__(self, alpha=0.25, gamma=2.0, box_weight=2.0, top_k=9):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha={alpha!r}")
        if gamma < 0 or box_weight < 0:
            raise ValueError(f"`gamma` and `box_weight` must be >= 0. Received: gamma={gamma!r}, "
                             f"box_weight={box_weight!r}")
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.box_weight = float(box_weight)
        self.top_k = int(top_k)

    def terms(self, predictions, targets, anchors, level_sizes):
        """Loss numerators and denominators.

        Args:
            predictions: dict `class_logits` `(B, N, K)`, `box_deltas` `(B, N, 4)`, `centerness` `(B, N)` (logits).
            targets: dict `boxes` `(B, M, 4)` `xyxy` pixels, `classes` int `(B, M)` in [0, K), `box_mask` `(B, M)`.
            anchors: `(N, 4)` `xyxy`; level_sizes: anchors per level.

        Returns:
            dict of float32 scalars: `classification`, `box`, `centerness` (sums), `num_positives`,
            `centerness_sum` (Σ_pos centerness targets).
        """
        logits = ops.cast(predictions["class_logits"], "float32")
        num_classes = int(logits.shape[-1])
        boxes = ops.cast(targets["boxes"], "float32")
        assignment = atss_assign(anchors, level_sizes, boxes, targets["box_mask"], top_k=self.top_k)
        positive = ops.cast(assignment["positive"], "float32")
        matched = assignment["matched"]
        matched_boxes = ops.take_along_axis(boxes, ops.repeat(matched[..., None], 4, axis=-1), axis=1)
        matched_classes = ops.take_along_axis(ops.cast(targets["classes"], "int32"), matched, axis=1)
        class_targets = ops.one_hot(matched_classes, num_classes) * positive[..., None]
        focal = keras.losses.binary_focal_crossentropy(
            class_targets, logits, apply_class_balancing=True, alpha=self.alpha, gamma=self.gamma,
            from_logits=True) * num_classes  # keras averages over the classes; the loss sums them
        centerness = centerness_targets(anchors, matched_boxes) * positive
        predicted_boxes = decode_boxes(ops.cast(anchors, "float32"), ops.cast(predictions["box_deltas"], "float32"))
        giou = generalized_iou(predicted_boxes, matched_boxes)
        centerness_logits = ops.cast(predictions["centerness"], "float32")
        bce = ops.maximum(centerness_logits, 0.0) - centerness_logits * centerness + ops.log1p(
            ops.exp(-ops.abs(centerness_logits)))
        return {
            "classification": ops.sum(focal),
            "box": self.box_weight * ops.sum((1.0 - giou) * centerness * positive),
            "centerness": ops.sum(bce * positive),
            "num_positives": ops.sum(positive),
            "centerness_sum": ops.sum(centerness),
        }

    @staticmethod
    def combine(terms, num_positives, centerness_sum):
        """The total loss from `terms` and the (possibly global) denominators (each at least 1e-6 / 1)."""
        num_positives = ops.maximum(num_positives, 1.0)
        return (terms["classification"] / num_positives + terms["box"] / ops.maximum(centerness_sum, 1e-6)
                + terms["centerness"] / num_positives)

    def __call__(self, predictions, targets, anchors, level_sizes):
        """The loss of one batch, normalised by its own positives."""
        terms = self.terms(predictions, targets, anchors, level_sizes)
        return self.combine(terms, terms["num_positives"], terms["centerness_sum"])

    def get_config(self):
        return {"alpha": self.alpha, "gamma": self.gamma, "box_weight": self.box_weight, "top_k": self.top_k}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

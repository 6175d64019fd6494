"""Box coding and GIoU for the ATSS detector (`xyxy` pixel boxes).

The coding is keras's own (`keras.utils.bounding_boxes.encode_box_to_deltas` / `decode_deltas_to_boxes`,
centre-yxhw deltas): variance (0.1, 0.1, 0.2, 0.2) is ATSS's box-coder weights (10, 10, 5, 5). Deltas are
ordered (dy, dx, dh, dw). Decoding clamps dh, dw at log(1000/16) / 0.2 as the reference coder does, so an
untrained head cannot overflow `exp`.
"""

import math

from keras import ops
from keras.utils import bounding_boxes

BOX_VARIANCE = (0.1, 0.1, 0.2, 0.2)
_MAX_LOG_SCALE = math.log(1000.0 / 16.0) / BOX_VARIANCE[2]


def encode_boxes(anchors, boxes):
    """Deltas `(..., N, 4)` of `xyxy` boxes `(..., N, 4)` relative to `xyxy` anchors `(N, 4)`."""
    return bounding_boxes.encode_box_to_deltas(anchors, boxes, anchor_format="xyxy", box_format="xyxy",
                                               variance=list(BOX_VARIANCE))


def decode_boxes(anchors, deltas):
    """`xyxy` boxes `(..., N, 4)` from deltas `(..., N, 4)` relative to `xyxy` anchors `(N, 4)`."""
    deltas = ops.concatenate([deltas[..., :2], ops.minimum(deltas[..., 2:], _MAX_LOG_SCALE)], axis=-1)
    return bounding_boxes.decode_deltas_to_boxes(anchors, deltas, anchor_format="xyxy", box_format="xyxy",
                                                 variance=list(BOX_VARIANCE))


def generalized_iou(boxes1, boxes2):
    """Element-wise GIoU of `xyxy` boxes of the same shape `(..., 4)` (Rezatofighi et al. 2019)."""
    area1 = ops.maximum(boxes1[..., 2] - boxes1[..., 0], 0.0) * ops.maximum(boxes1[..., 3] - boxes1[..., 1], 0.0)
    area2 = ops.maximum(boxes2[..., 2] - boxes2[..., 0], 0.0) * ops.maximum(boxes2[..., 3] - boxes2[..., 1], 0.0)
    width = ops.maximum(ops.minimum(boxes1[..., 2], boxes2[..., 2]) - ops.maximum(boxes1[..., 0], boxes2[..., 0]), 0.0)
    height = ops.maximum(ops.minimum(boxes1[..., 3], boxes2[..., 3]) - ops.maximum(boxes1[..., 1], boxes2[..., 1]),
                         0.0)
    intersection = width * height
    union = area1 + area2 - intersection
    iou = intersection / ops.maximum(union, 1e-7)
    hull = (ops.maximum(boxes1[..., 2], boxes2[..., 2]) - ops.minimum(boxes1[..., 0], boxes2[..., 0])) * (
        ops.maximum(boxes1[..., 3], boxes2[..., 3]) - ops.minimum(boxes1[..., 1], boxes2[..., 1]))
    return iou - (hull - union) / ops.maximum(hull, 1e-7)

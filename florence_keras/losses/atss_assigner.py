"""ATSS (Adaptive Training Sample Selection, Zhang et al. 2020): which anchors are positives of which box.

ATSS exists in none of the pinned libraries (keras, keras-hub, keras-cv, tf-models), so it is written here in
`keras.ops`, batched over images and padded boxes. The rule, as in the authors' code (sfzhang15/ATSS,
`atss_core/modeling/rpn/atss/loss.py`) and Dynamic Head's `extra/atss.py`:

1. per pyramid level, the `top_k` (9) anchors whose centres are nearest the box centre are its candidates;
2. the box's IoU threshold is the mean + the standard deviation of its candidates' IoUs (the sample standard
   deviation, n − 1, as `torch.std`);
3. a candidate is positive when its IoU ≥ the threshold and its centre lies inside the box (every side
   distance > 0.01 pixel);
4. an anchor positive for several boxes goes to the one it overlaps most (highest IoU).

Deviation [ours]: the top-k per level is taken as "distance ≤ the k-th smallest distance", so anchors tied
with the k-th one are all candidates (the reference breaks ties by index); it avoids a one-hot over anchors
(memory B·M·k·N) and changes nothing unless distances tie exactly.
"""

from keras import ops


def box_centers(boxes):
    """Centres `(..., 2)` (x, y) of `xyxy` boxes `(..., 4)`."""
    return ops.stack([(boxes[..., 0] + boxes[..., 2]) * 0.5, (boxes[..., 1] + boxes[..., 3]) * 0.5], axis=-1)


def pairwise_iou(boxes, anchors):
    """IoU `(B, M, N)` of `xyxy` boxes `(B, M, 4)` with `xyxy` anchors `(N, 4)` (0 where a union is empty)."""
    b = boxes[:, :, None, :]
    a = anchors[None, None, :, :]
    width = ops.maximum(ops.minimum(b[..., 2], a[..., 2]) - ops.maximum(b[..., 0], a[..., 0]), 0.0)
    height = ops.maximum(ops.minimum(b[..., 3], a[..., 3]) - ops.maximum(b[..., 1], a[..., 1]), 0.0)
    intersection = width * height
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    union = area_b + area_a - intersection
    return ops.where(union > 0, intersection / ops.maximum(union, 1e-9), 0.0)


def atss_assign(anchors, level_sizes, boxes, box_mask, top_k=9):
    """ATSS assignment of anchors to ground-truth boxes.

    Args:
        anchors: float `(N, 4)` `xyxy` anchors, level by level (`level_sizes` anchors each).
        level_sizes: list of int, anchors per level (sums to N).
        boxes: float `(B, M, 4)` `xyxy` ground-truth boxes, padded.
        box_mask: `(B, M)`, 1/True for a real box, 0/False for padding.
        top_k: int, candidates per level (fewer on a level with fewer anchors).

    Returns:
        dict with
        * `"positive"`: bool `(B, N)`, whether the anchor is a positive;
        * `"matched"`: int32 `(B, N)`, the index of its box (0 for negatives: read it only where positive);
        * `"threshold"`: float `(B, M)`, each box's IoU threshold (mean + std of its candidates);
        * `"candidates"`: bool `(B, M, N)`; `"ious"`: float `(B, M, N)`.
    """
    if int(sum(level_sizes)) != int(anchors.shape[0]):
        raise ValueError(f"`level_sizes` {list(level_sizes)} must sum to the number of anchors {anchors.shape[0]}.")
    if top_k < 1:
        raise ValueError(f"`top_k` must be >= 1. Received: top_k={top_k}")
    anchors = ops.cast(anchors, "float32")
    boxes = ops.cast(boxes, "float32")
    valid = ops.cast(box_mask, "bool")
    ious = pairwise_iou(boxes, anchors)
    offsets = box_centers(boxes)[:, :, None, :] - box_centers(anchors)[None, None, :, :]
    distances = ops.sqrt(ops.sum(offsets * offsets, axis=-1))  # (B, M, N)
    pieces, start = [], 0
    for size in level_sizes:
        level = distances[:, :, start:start + size]
        k = min(top_k, int(size))
        kth = -ops.top_k(-level, k)[0][..., k - 1:k]  # the k-th smallest distance, (B, M, 1)
        pieces.append(level <= kth)
        start += size
    candidates = ops.logical_and(ops.concatenate(pieces, axis=-1), valid[:, :, None])
    weights = ops.cast(candidates, "float32")
    count = ops.sum(weights, axis=-1)
    mean = ops.sum(ious * weights, axis=-1) / ops.maximum(count, 1.0)
    variance = ops.sum(ops.square(ious - mean[..., None]) * weights, axis=-1) / ops.maximum(count - 1.0, 1.0)
    threshold = mean + ops.sqrt(variance)
    centers = box_centers(anchors)
    cx, cy = centers[None, None, :, 0], centers[None, None, :, 1]
    inside = ops.minimum(
        ops.minimum(cx - boxes[..., 0:1], cy - boxes[..., 1:2]),
        ops.minimum(boxes[..., 2:3] - cx, boxes[..., 3:4] - cy)) > 0.01
    positive_pairs = ops.logical_and(ops.logical_and(candidates, ious >= threshold[..., None]), inside)
    scored = ops.where(positive_pairs, ious, -1.0)
    return {
        "positive": ops.max(scored, axis=1) > -0.5,
        "matched": ops.cast(ops.argmax(scored, axis=1), "int32"),
        "threshold": threshold,
        "candidates": candidates,
        "ious": ious,
    }


def centerness_targets(anchors, matched_boxes):
    """FCOS/ATSS centerness of each anchor centre in its matched box: sqrt(min(l,r)/max(l,r) · min(t,b)/max(t,b)).

    Args:
        anchors: `(N, 4)` `xyxy`.
        matched_boxes: `(B, N, 4)` `xyxy`.

    Returns:
        float32 `(B, N)` in [0, 1] (0 where the centre is outside the box).
    """
    centers = box_centers(ops.cast(anchors, "float32"))[None]
    left = centers[..., 0] - matched_boxes[..., 0]
    top = centers[..., 1] - matched_boxes[..., 1]
    right = matched_boxes[..., 2] - centers[..., 0]
    bottom = matched_boxes[..., 3] - centers[..., 1]
    horizontal = ops.minimum(left, right) / ops.maximum(ops.maximum(left, right), 1e-9)
    vertical = ops.minimum(top, bottom) / ops.maximum(ops.maximum(top, bottom), 1e-9)
    return ops.sqrt(ops.maximum(horizontal * vertical, 0.0))

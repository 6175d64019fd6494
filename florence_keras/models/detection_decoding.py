"""Detections from the ATSS head's outputs: score = class × centerness, top-k, per-class NMS (TensorFlow)."""

import tensorflow as tf

from florence_keras.losses.detection_boxes import decode_boxes


def candidate_boxes(outputs, anchors, top_k=1000):
    """The `top_k` highest-scoring (anchor, class) pairs of each image.

    Score = sigmoid(class logit) × sigmoid(centerness logit) (ATSS / Dynamic Head inference).

    Args:
        outputs: the detector's outputs (`class_logits` `(B, N, K)`, `box_deltas`, `centerness`).
        anchors: `(N, 4)` `xyxy`.
        top_k: int, pairs kept per image (all of them when N·K is smaller).

    Returns:
        dict: `boxes` `(B, k, 4)` `xyxy` in the model's input pixels, `scores` `(B, k)`, `classes` int32 `(B, k)`.
    """
    logits = tf.cast(outputs["class_logits"], tf.float32)
    num_classes = logits.shape[-1]
    scores = tf.sigmoid(logits) * tf.sigmoid(tf.cast(outputs["centerness"], tf.float32))[..., None]
    flat = tf.reshape(scores, [tf.shape(scores)[0], -1])
    k = min(int(top_k), int(anchors.shape[0]) * int(num_classes))
    top_scores, indices = tf.math.top_k(flat, k=k)
    anchor_index = indices // num_classes
    boxes = decode_boxes(tf.cast(anchors, tf.float32), tf.cast(outputs["box_deltas"], tf.float32))
    return {"boxes": tf.gather(boxes, anchor_index, batch_dims=1), "scores": top_scores,
            "classes": tf.cast(indices % num_classes, tf.int32)}


def per_class_nms(boxes, class_scores, iou_threshold=0.6, score_threshold=0.05, max_detections=100):
    """Per-class NMS over candidates (`tf.image.combined_non_max_suppression`).

    Args:
        boxes: `(B, k, 4)` `xyxy`.
        class_scores: `(B, k, C)`, each candidate's score for each class (0 where it is not a candidate of it).
        iou_threshold, score_threshold: NMS's IoU and the lowest score kept.
        max_detections: detections kept per image (also per class).

    Returns:
        dict: `boxes` `(B, D, 4)` `xyxy`, `confidence` `(B, D)`, `labels` int32 `(B, D)` (−1 past the valid
        ones), `num_detections` int32 `(B,)`, D = max_detections.
    """
    # combined NMS is coordinate-order agnostic for IoU; it wants [y1, x1, y2, x2] only for clipping (off here).
    result = tf.image.combined_non_max_suppression(
        boxes[:, :, None, :], class_scores, max_output_size_per_class=max_detections,
        max_total_size=max_detections, iou_threshold=iou_threshold, score_threshold=score_threshold,
        pad_per_class=False, clip_boxes=False)
    count = result.valid_detections
    valid = tf.sequence_mask(count, max_detections)
    return {"boxes": result.nmsed_boxes, "confidence": tf.where(valid, result.nmsed_scores, 0.0),
            "labels": tf.where(valid, tf.cast(result.nmsed_classes, tf.int32), -1),
            "num_detections": tf.cast(count, tf.int32)}

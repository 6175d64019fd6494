"""FlorenceDetector: one-stage ATSS detection on the CoSwin feature pyramid (Florence's object-level adapter)."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from florence_keras.layers.atss_head import ATSSHead
from florence_keras.layers.detection_fpn import DetectionFPN
from florence_keras.losses.atss_loss import ATSSLoss
from florence_keras.models.detection_anchors import level_anchors
from florence_keras.models.detection_decoding import candidate_boxes
from florence_keras.models.detection_decoding import per_class_nms
from florence_keras.models.florence_backbone import FlorenceBackbone
from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
from florence_keras.models.florence_task import FlorenceTask
from florence_keras.models.prompt_ensemble import check_class_names_and_templates
from florence_keras.models.prompt_ensemble import prompt_ensemble_embeddings

DEFAULT_TEMPLATES = ("a photo of a {}.",)
# A detection training batch (see the class docstring).
TRAINING_KEYS = {"images": ("float", 4), "boxes": ("float", 3), "classes": ("int32", 2), "box_mask": ("float", 2)}


REGION_CLASSIFIERS = ("pooled", "crops")
CROP_CHUNK = 64  # crops per image-encoder pass in the "crops" region classifier


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceDetector(FlorenceTask):
    """Object detection from a Florence backbone's image encoder: FPN → Dynamic Head → ATSS (SPEC §3).

    The CoSwin stages 3–5 (strides 8, 16, 32; the last three stages of any CoSwin) feed a `DetectionFPN`
    (plus P6, P7 by stride-2 convs), then `num_head_blocks` Dynamic Head blocks (0: none, the head's towers
    do the work), then an `ATSSHead` (one anchor per location, a square of `anchor_scale × stride`), trained
    with `ATSSLoss` (ATSS assignment, focal + 2·GIoU + centerness).

    * Supervised: the head predicts `len(class_names)` classes.
    * Class-agnostic / zero-shot (`class_agnostic=True`): the head predicts one "object" class; each box is
      then classified by the CLIP side against the prompt-ensembled text embeddings of `class_names` (softmax
      of the logit-scaled cosines). A box's score for class c is its object score × p(c | box). New class
      names need no training (`set_class_names`). Train it with the backbone frozen (`freeze_backbone=True`),
      or the image features drift away from the text tower. Two box classifiers (`region_classifier`):
      * `"crops"` (default): each of the `crop_top_k` best boxes is cut out of the input as a square
        `crop_context` times its longer side (centred on the box; outside the input reads as the normalised
        zero, the mean colour), resized to the CLIP encoder's own input size and embedded by the whole image
        encoder — CLIP's own view of the object, as ViLD's cropped-region baseline (1.5× context). The other
        candidates are dropped. One encoder pass per kept box.
      * `"pooled"`: the last CoSwin stage (after the encoder's final norm, as CLIP's pooled feature) is pooled
        over the box (box-masked average: each cell weighted by its area inside the box) and projected by the
        CLIP image projection. No extra pass, but at stride 32 a cell mixes an object with its neighbours.

    Inputs and outputs: calling the Task on normalised images `(B, S, S, 3)` returns a dict of
    `class_logits` `(B, N, K)`, `box_deltas` `(B, N, 4)`, `centerness` `(B, N)` and `feature_map` (the last
    stage, final-normed). `predict(images)` takes raw images of any size (`[0, 255]`): each is resized to fit
    `S × S` keeping its aspect ratio (bilinear, antialiased) and padded at the bottom/right with zeros, then
    normalised; it returns keras-hub's detector dict — `boxes` `(B, D, 4)` `xyxy` in each input image's
    pixels, `confidence` `(B, D)`, `labels` `(B, D)` (class indices, −1 past `num_detections`),
    `num_detections` `(B,)` — with score = class × centerness, the top `pre_nms_top_k`, per-class NMS at
    `nms_iou_threshold`, `max_detections` kept.

    Training batches: `{"images" (B, S, S, 3) normalised, "boxes" (B, M, 4) xyxy pixels of the S × S input,
    "classes" int32 (B, M), "box_mask" (B, M)}` (`florence_keras.data.detection_dataset`).

    Args:
        backbone: a `FlorenceBackbone` (its image encoder a CoSwin with `forward_features`).
        class_names: list of str, the classes in label order.
        preprocessor: a `FlorenceCLIPPreprocessor` (image converter; tokenizer for the zero-shot names).
        image_size: int, the square input side; defaults to the encoder's. A multiple of 32 is exact.
        class_agnostic: bool, one head class + CLIP classification. Defaults to False.
        fpn_channels: int, the pyramid's width. Defaults to 256.
        num_head_blocks: int >= 0, Dynamic Head blocks. Defaults to 6.
        num_tower_convs: int >= 0, conv towers in the ATSS head (used with 0 head blocks). Defaults to 0.
        anchor_scale: float, anchor side in strides. Defaults to 8.
        freeze_backbone: bool, keep the image encoder's weights fixed. Defaults to False.
        templates: prompt templates for the zero-shot class embeddings.
        category_ids: optional list of int, the dataset's category id of each class (COCO results).
        score_threshold, pre_nms_top_k, nms_iou_threshold, max_detections: inference (0.05, 1000, 0.6, 100).
        region_classifier: zero-shot box classifier, `"crops"` (each box cropped and re-encoded; the default) or
            `"pooled"` (box-pooled last stage: no extra encoder pass, less accurate; docs/detection.md).
        crop_context: the crop's side over the box's longer side (`"crops"`). Defaults to 1.5.
        crop_top_k: boxes classified per image (`"crops"`). Defaults to 100.
        **kwargs: `keras.Model` arguments.

    Example:
    >>> detector = FlorenceDetector.from_preset("florence_mini_builtin",            # doctest: +SKIP
    ...     class_names=["circle", "square"], image_size=128, num_head_blocks=0)
    >>> detector.predict(images)["boxes"]   # (B, 100, 4) xyxy pixels            # doctest: +SKIP
    """

    backbone_cls = FlorenceBackbone
    preprocessor_cls = FlorenceCLIPPreprocessor
    # The trainer checks the batches against this (`FlorenceTask.check_training_batch`).
    training_batch_spec = TRAINING_KEYS

    def __init__(self, backbone, class_names, preprocessor=None, image_size=None, class_agnostic=False,
                 fpn_channels=256, num_head_blocks=6, num_tower_convs=0, anchor_scale=8.0, freeze_backbone=False,
                 templates=DEFAULT_TEMPLATES, category_ids=None, score_threshold=0.05, pre_nms_top_k=1000,
                 nms_iou_threshold=0.6, max_detections=100, region_classifier="crops", crop_context=1.5,
                 crop_top_k=100, **kwargs):
        encoder = backbone.image_encoder
        if not hasattr(encoder, "forward_features"):
            raise ValueError(f"The detector reads a CoSwin pyramid; this backbone's image encoder is a "
                             f"{type(encoder).__name__}.")
        class_names, templates = check_class_names_and_templates(class_names, templates)
        image_size = int(encoder.image_shape[0]) if image_size is None else image_size
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"`image_size` must be a positive int. Received: image_size={image_size!r}")
        if not isinstance(num_head_blocks, int) or num_head_blocks < 0:
            raise ValueError(f"`num_head_blocks` must be an int >= 0. Received: num_head_blocks={num_head_blocks!r}")
        if category_ids is not None and len(category_ids) != len(class_names):
            raise ValueError(f"`category_ids` needs one id per class ({len(class_names)}). "
                             f"Received: {len(category_ids)}")
        if region_classifier not in REGION_CLASSIFIERS:
            raise ValueError(f"`region_classifier` must be one of {REGION_CLASSIFIERS}. "
                             f"Received: region_classifier={region_classifier!r}")
        if not isinstance(crop_context, (int, float)) or not crop_context > 0:
            raise ValueError(f"`crop_context` must be a number > 0. Received: crop_context={crop_context!r}")
        for name, value in (("pre_nms_top_k", pre_nms_top_k), ("max_detections", max_detections),
                            ("crop_top_k", crop_top_k)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
        # === Config === (before the functional model: keras-hub's Task compiles in its constructor)
        self.class_names = class_names
        self.image_size = image_size
        self.class_agnostic = bool(class_agnostic)
        self.fpn_channels = fpn_channels
        self.num_head_blocks = num_head_blocks
        self.num_tower_convs = num_tower_convs
        self.anchor_scale = float(anchor_scale)
        self.freeze_backbone = bool(freeze_backbone)
        self.templates = templates
        self.category_ids = None if category_ids is None else [int(c) for c in category_ids]
        self.score_threshold = float(score_threshold)
        self.pre_nms_top_k = pre_nms_top_k
        self.nms_iou_threshold = float(nms_iou_threshold)
        self.max_detections = max_detections
        self.region_classifier = region_classifier
        self.crop_context = float(crop_context)
        self.crop_top_k = crop_top_k
        self._class_embeddings = None
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        for unused in (backbone.text_encoder, backbone.text_projection, backbone.image_projection,
                       backbone.logit_scale_layer, encoder.final_norm):
            # Zero-shot reads the projection and the final norm (CLIP's pooled feature) but never trains them;
            # the detection loss does not reach them (weight decay would shrink them).
            unused.trainable = False
        if self.freeze_backbone:
            encoder.trainable = False
        head_classes = 1 if self.class_agnostic else len(class_names)
        self.neck = DetectionFPN(fpn_channels, num_extra_levels=2, dtype=backbone.dtype_policy, name="fpn")
        self.dynamic_head = None
        if num_head_blocks:
            from florence_keras.layers.dynamic_head import DynamicHead  # built by issue #13's layer work

            self.dynamic_head = DynamicHead(num_blocks=num_head_blocks, channels=fpn_channels,
                                            dtype=backbone.dtype_policy, name="dynamic_head")
        self.head = ATSSHead(head_classes, fpn_channels, num_levels=min(len(encoder.depths), 3) + 2, num_convs=num_tower_convs,
                             kernel_size=1 if num_head_blocks else 3, dtype=backbone.dtype_policy, name="atss_head")
        # === Functional model ===
        images = keras.Input(shape=(image_size, image_size, 3), name="images")
        features = encoder.forward_features(images)
        pyramid = features["pyramid"]
        stages = [pyramid[f"P{i + 2}"] for i in range(len(pyramid))][-3:]
        levels = self.neck(stages)
        if self.dynamic_head is not None:
            levels = self.dynamic_head(levels)
        outputs = dict(self.head(levels))
        outputs["feature_map"] = features["feature_map"]
        super().__init__(inputs=images, outputs=outputs, **kwargs)
        # === Anchors (static: the input size is fixed) ===
        stage_strides = [int(encoder.patch_size) * 2 ** i for i in range(len(pyramid))][-len(stages):]
        strides = stage_strides + [stage_strides[-1] * 2, stage_strides[-1] * 4]
        map_sizes = [(int(level.shape[1]), int(level.shape[2])) for level in levels]
        self.strides = strides
        self.anchors, self.level_sizes = level_anchors(map_sizes, strides, self.anchor_scale)
        self.feature_stride = stage_strides[-1]

    # ------------------------------------------------------------------------------------------------
    # Training.

    def default_loss(self):
        """`ATSSLoss()`: focal (α 0.25, γ 2) / positives + 2 × GIoU · centerness + centerness BCE."""
        return ATSSLoss()

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """`fit` on batches `x = {"images", "boxes", "classes", "box_mask"}` (y unused)."""
        return self.replica_loss(x, y, training=training)

    def preprocess_samples(self, x, y=None, sample_weight=None):
        """`fit` takes normalised batches as the training pipeline makes them: passed unchanged."""
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    def replica_loss(self, x, y=None, replica_context=None, training=True):
        """One replica's share of the ATSS loss on its batch (the numerators over the global denominators:
        #positives and Σ centerness targets are summed across replicas, as the reference's per-GPU average)."""
        missing = sorted(set(TRAINING_KEYS) - set(x)) if isinstance(x, dict) else sorted(TRAINING_KEYS)
        if missing:
            raise ValueError(f"Detection batches are {sorted(TRAINING_KEYS)}; missing {missing}.")
        loss_fn = getattr(self, "task_loss", None) or self._training_loss()
        predictions = self(x["images"], training=training)
        targets = {"boxes": x["boxes"], "classes": x["classes"], "box_mask": x["box_mask"]}
        if self.class_agnostic:
            targets["classes"] = ops.zeros_like(x["classes"])
        terms = loss_fn.terms(predictions, targets, self.anchors, self.level_sizes)
        num_positives = ops.stop_gradient(terms["num_positives"])
        centerness_sum = ops.stop_gradient(terms["centerness_sum"])
        if replica_context is not None and replica_context.num_replicas_in_sync > 1:
            num_positives, centerness_sum = replica_context.all_reduce(
                tf.distribute.ReduceOp.SUM, [num_positives, centerness_sum])
        return self.with_layer_losses(loss_fn.combine(terms, num_positives, centerness_sum))

    def _training_loss(self):
        if getattr(self, "_default_loss", None) is None:
            self._default_loss = self.default_loss()
        return self._default_loss

    # ------------------------------------------------------------------------------------------------
    # Zero-shot class names.

    def set_class_names(self, class_names):
        """(Class-agnostic) Replaces the class names; their text embeddings are recomputed on next use."""
        if not self.class_agnostic:
            raise ValueError("Only a class-agnostic detector names its classes by text; this one's head was "
                             f"trained on {len(self.class_names)} classes.")
        self.class_names, _ = check_class_names_and_templates(class_names, self.templates)
        self.category_ids = None
        self._class_embeddings = None

    def class_embeddings(self):
        """Prompt-ensembled unit-norm text embeddings `[C, D]` of the class names (cached)."""
        if self._class_embeddings is None:
            if self.preprocessor is None:
                raise ValueError("Embedding class names needs the preprocessor's tokenizer; this detector has none.")

            def encode(texts):
                return self.backbone.embed_texts(self.preprocessor.tokenize(texts))

            self._class_embeddings = prompt_ensemble_embeddings(encode, self.class_names, self.templates)
        return self._class_embeddings

    def box_class_probabilities(self, feature_map, boxes, class_embeddings):
        """p(class | box) `(B, k, C)` from the box-pooled last stage (see the class docstring).

        Args:
            feature_map: `(B, h, w, F)` the final-normed last stage.
            boxes: `(B, k, 4)` `xyxy` in the model's input pixels.
            class_embeddings: `(C, D)` unit-norm text embeddings.
        """
        stride = float(self.feature_stride)
        height, width = int(feature_map.shape[1]), int(feature_map.shape[2])
        boxes = tf.cast(boxes, tf.float32)

        def overlaps(low, high, cells):
            starts = tf.range(cells, dtype=tf.float32) * stride
            covered = tf.minimum(high[..., None], starts + stride) - tf.maximum(low[..., None], starts)
            return tf.maximum(covered, 0.0)  # (B, k, cells)

        weights = overlaps(boxes[..., 1], boxes[..., 3], height)[..., :, None] * overlaps(
            boxes[..., 0], boxes[..., 2], width)[..., None, :]
        weights = tf.reshape(weights, [tf.shape(boxes)[0], tf.shape(boxes)[1], height * width])
        weights = weights / tf.maximum(tf.reduce_sum(weights, axis=-1, keepdims=True), 1e-6)
        cells = tf.reshape(tf.cast(feature_map, tf.float32), [tf.shape(feature_map)[0], height * width, -1])
        pooled = tf.matmul(weights, cells)
        embeddings = tf.cast(self.backbone.image_normalize(self.backbone.image_projection(pooled)), tf.float32)
        scale = tf.cast(self.backbone.logit_scale_layer(embeddings), tf.float32)
        logits = scale * tf.matmul(embeddings, tf.cast(class_embeddings, tf.float32), transpose_b=True)
        return tf.nn.softmax(logits, axis=-1)

    def crop_class_probabilities(self, images, boxes, class_embeddings):
        """p(class | box) `(B, k, C)` from each box cropped out of `images` and re-encoded (see the class docstring).

        Args:
            images: `(B, S, S, 3)` the normalised model inputs.
            boxes: `(B, k, 4)` `xyxy` in the model's input pixels.
            class_embeddings: `(C, D)` unit-norm text embeddings.
        """
        images = tf.cast(images, tf.float32)
        boxes = tf.cast(boxes, tf.float32)
        batch, count = tf.shape(boxes)[0], tf.shape(boxes)[1]
        centre_x, centre_y = (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2
        half = self.crop_context * tf.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]) / 2
        half = tf.maximum(half, 0.5)  # a degenerate box still reads one pixel
        side_y, side_x = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
        size = int(self.backbone.image_encoder.image_shape[0])
        # The crop's `size` samples sit at the centres of `size` equal cells of the window [lo, hi] (pixel edges),
        # as a half-pixel-centred resize; crop_and_resize places its first and last samples at y1 (H - 1) and
        # y2 (H - 1) in pixel-centre units (pixel i's centre is i, its edges i - 0.5 and i + 0.5).
        def corners(lo, hi, side):
            cell = (hi - lo) / size
            return (lo - 0.5 + 0.5 * cell) / (side - 1.0), (hi - 0.5 - 0.5 * cell) / (side - 1.0)

        y1, y2 = corners(centre_y - half, centre_y + half, side_y)
        x1, x2 = corners(centre_x - half, centre_x + half, side_x)
        windows = tf.stack([y1, x1, y2, x2], axis=-1)
        crops = tf.image.crop_and_resize(images, tf.reshape(windows, [-1, 4]),
                                         tf.repeat(tf.range(batch), count), [size, size], extrapolation_value=0.0)
        # Encoded CROP_CHUNK crops at a time (a batch of 16 images × 100 boxes at 224 px would not fit at once).
        total = tf.shape(crops)[0]
        chunks = -(-total // CROP_CHUNK)
        padded = tf.pad(crops, [[0, chunks * CROP_CHUNK - total], [0, 0], [0, 0], [0, 0]])
        dtype = self.backbone.image_encoder.compute_dtype
        embeddings = tf.map_fn(
            lambda chunk: tf.cast(self.backbone.embed_images(tf.cast(chunk, dtype)), tf.float32),
            tf.reshape(padded, [chunks, CROP_CHUNK, size, size, 3]),
            fn_output_signature=tf.TensorSpec([CROP_CHUNK, self.backbone.projection_dim], tf.float32))
        embeddings = tf.reshape(tf.reshape(embeddings, [-1, self.backbone.projection_dim])[:total],
                                [batch, count, -1])
        scale = tf.cast(self.backbone.logit_scale_layer(embeddings), tf.float32)
        logits = scale * tf.matmul(embeddings, tf.cast(class_embeddings, tf.float32), transpose_b=True)
        return tf.nn.softmax(logits, axis=-1)

    # ------------------------------------------------------------------------------------------------
    # Inference on raw images.

    def detection_inputs(self, images):
        """Raw images `(B, H, W, C)` in `[0, 255]` (one size) -> `(normalised (B, S, S, 3), scales)`: resized to
        `round(H·s) × round(W·s)`, `s = S / max(H, W)` (bilinear, antialiased), zero-padded at the bottom/right.
        `scales` (float32 `(4,)`, x/y/x/y) is the exact per-axis ratio: input boxes = image boxes × `scales`
        (the training pipeline's `augment_detection` without a seed does the same)."""
        if self.preprocessor is None or self.preprocessor.image_converter is None:
            raise ValueError("This detector has no image converter; call it on normalised images instead.")
        images = tf.cast(tf.convert_to_tensor(images), tf.float32)
        images = _three_channels(images)
        height = tf.cast(tf.shape(images)[1], tf.float32)
        width = tf.cast(tf.shape(images)[2], tf.float32)
        scale = float(self.image_size) / tf.maximum(height, width)
        new_height = tf.maximum(tf.cast(tf.round(height * scale), tf.int32), 1)
        new_width = tf.maximum(tf.cast(tf.round(width * scale), tf.int32), 1)
        resized = tf.image.resize(images, tf.stack([new_height, new_width]), method="bilinear", antialias=True)
        padded = tf.image.pad_to_bounding_box(resized, 0, 0, self.image_size, self.image_size)
        normalised = self.preprocessor.image_converter.normalizer()(padded)
        scale_x = tf.cast(new_width, tf.float32) / width
        scale_y = tf.cast(new_height, tf.float32) / height
        return tf.cast(normalised, tf.float32), tf.stack([scale_x, scale_y, scale_x, scale_y])

    def decode(self, outputs, scales, image_height, image_width, class_embeddings=None, inputs=None):
        """Detections (keras-hub's dict) from the model's outputs on inputs resized by `scales` from images of
        `image_height × image_width` (TensorFlow: shared by `predict` and the `detect` signature). `inputs`, the
        normalised model inputs, are needed by the `"crops"` region classifier."""
        candidates = candidate_boxes(outputs, self.anchors, self.pre_nms_top_k)
        if self.class_agnostic and self.region_classifier == "crops":
            if inputs is None:
                raise ValueError('The "crops" region classifier needs the model inputs: decode(..., inputs=...).')
            # The candidates come best first: keep the `crop_top_k` best.
            candidates = {key: value[:, :self.crop_top_k] for key, value in candidates.items()}
            embeddings = self.class_embeddings() if class_embeddings is None else class_embeddings
            probabilities = self.crop_class_probabilities(inputs, candidates["boxes"], embeddings)
            class_scores = candidates["scores"][..., None] * probabilities
        elif self.class_agnostic:
            embeddings = self.class_embeddings() if class_embeddings is None else class_embeddings
            probabilities = self.box_class_probabilities(outputs["feature_map"], candidates["boxes"], embeddings)
            class_scores = candidates["scores"][..., None] * probabilities
        else:
            class_scores = tf.one_hot(candidates["classes"], len(self.class_names)) * candidates["scores"][..., None]
        detections = per_class_nms(candidates["boxes"], class_scores, self.nms_iou_threshold, self.score_threshold,
                                   self.max_detections)
        limits = tf.cast(tf.stack([image_width, image_height, image_width, image_height]), tf.float32)
        boxes = tf.clip_by_value(detections["boxes"] / scales, 0.0, limits)
        valid = tf.sequence_mask(detections["num_detections"], self.max_detections)[..., None]
        detections["boxes"] = tf.where(valid, boxes, 0.0)
        return detections

    def predict(self, x, batch_size=16, verbose=None, **kwargs):
        """Detections on raw images.

        Args:
            x: raw images in `[0, 255]`: `(B, H, W, C)`, one `(H, W, C)`, or a list of `(H, W, C)` of any sizes
                (C = 1, 3 or 4).
            batch_size: images per forward pass.
            verbose, **kwargs: ignored (Keras's `predict` arguments).

        Returns:
            dict of numpy arrays: `boxes` `(B, D, 4)` `xyxy` in the input images' pixels, `confidence` `(B, D)`,
            `labels` int32 `(B, D)` (−1 = none), `num_detections` `(B,)`; a list of images gives one batch in
            list order; one image gives arrays without the batch axis.
        """
        del verbose, kwargs
        if isinstance(x, (list, tuple)):
            if not x:
                raise ValueError("`x` is an empty list of images.")
            parts = [self.predict(np.asarray(image)[None], batch_size=batch_size) for image in x]
            return {key: np.concatenate([part[key] for part in parts], axis=0) for key in parts[0]}
        x = np.asarray(x)
        if x.ndim == 3:
            return {key: value[0] for key, value in self.predict(x[None], batch_size=batch_size).items()}
        if x.ndim != 4 or x.shape[0] == 0 or min(x.shape[1:3]) < 1:
            raise ValueError(f"`x` must be images (H, W, C) or (B, H, W, C). Received shape: {x.shape}")
        embeddings = self.class_embeddings() if self.class_agnostic else None
        parts = []
        for start in range(0, x.shape[0], batch_size):
            inputs, scales = self.detection_inputs(x[start:start + batch_size])
            outputs = self(inputs, training=False)
            detections = self.decode(outputs, scales, x.shape[1], x.shape[2], embeddings, inputs=inputs)
            parts.append({key: np.asarray(value) for key, value in detections.items()})
        return {key: np.concatenate([part[key] for part in parts], axis=0) for key in parts[0]}

    def get_config(self):
        config = super().get_config()
        config.update({
            "class_names": self.class_names, "image_size": self.image_size, "class_agnostic": self.class_agnostic,
            "fpn_channels": self.fpn_channels, "num_head_blocks": self.num_head_blocks,
            "num_tower_convs": self.num_tower_convs, "anchor_scale": self.anchor_scale,
            "freeze_backbone": self.freeze_backbone, "templates": self.templates,
            "category_ids": self.category_ids, "score_threshold": self.score_threshold,
            "pre_nms_top_k": self.pre_nms_top_k, "nms_iou_threshold": self.nms_iou_threshold,
            "max_detections": self.max_detections, "region_classifier": self.region_classifier,
            "crop_context": self.crop_context, "crop_top_k": self.crop_top_k})
        return config


def _three_channels(images):
    """`(B, H, W, C)` with C = 1 (repeated), 3, or 4 (alpha dropped) -> 3 channels."""
    channels = images.shape[-1]
    if channels == 1:
        return tf.repeat(images, 3, axis=-1)
    if channels == 4:
        return images[..., :3]
    if channels != 3:
        raise ValueError(f"Images must have 1, 3 or 4 channels. Received: {channels}")
    return images

"""FlorenceDensePretrainer: UniCL pretraining plus a dense head that names what is where (pretraining only)."""

import keras
import tensorflow as tf
from keras import ops

from florence_keras.layers.dense_label_head import DenseLabelHead
from florence_keras.losses.dense_label_loss import dense_label_loss
from florence_keras.losses.unicl_loss import unicl_loss
from florence_keras.models.florence_clip import FlorenceCLIP
from florence_keras.models.fusion_tokens import image_map


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceDensePretrainer(FlorenceCLIP):
    """A `FlorenceCLIP` trained on UniCL plus `dense_weight` × a dense-label loss on its image map [ours].

    The dense head (`DenseLabelHead`: LayerNorm → Dense → depth-to-space, linear) reads the map that the VQA fusion
    reads (`fusion_tokens.image_map`: the last stage after the final norm, with `image_detail` the stage before
    folded under each cell) and predicts, for each `sub_cells × sub_cells` sub-block of each cell, the fraction of
    each class of each kind of per-pixel label (the built-in data's: occlusion, shape, colour,
    `scene.dense_label_map`), scored by `dense_label_loss`. Contrastive captions say what is in an image; the
    dense labels say where, which is what the fusion's questions ("what colour is the star?") need to bind: on
    the built-in scenes, pretraining with this head lifted VQA by 8.4 points over the same run without it
    (docs/vqa.md, session 16).

    A share `high_resolution_fraction` of each batch also goes through the encoder at `high_resolution_scale` ×
    the resolution (the images resized bilinearly, as the VQA fusion's second scale sees them), its dense loss
    weighted by that share.

    The head is for pretraining only: `clip()` returns the `FlorenceCLIP` without it (what the recipe saves as the
    preset). Train it with the toolkit's trainer (`pretrain_unicl(dense_aux_weight=...)`, `UniCLTrainer`), whose
    batches carry `dense_labels` (`make_image_text_input_fn(dense_labels=...)`).

    Args:
        backbone: a `FlorenceBackbone` whose image encoder is a `CoSwinBackbone`.
        preprocessor: a `FlorenceCLIPPreprocessor`.
        dense_class_counts: classes per kind of label, in the label maps' channel order; the first kind's class 0
            is the background.
        dense_weight: float >= 0, the dense loss's weight beside UniCL. Defaults to 1.
        sub_cells: int, sub-blocks per side of each map cell. Defaults to 4.
        image_detail: bool, fold the stage before under each cell (as the VQA fusion's `image_detail`).
            Defaults to True.
        background_weight: float in [0, 1) (`dense_label_loss`). Defaults to 0.9.
        high_resolution_fraction: float in [0, 1], the share of each batch also seen at the higher scale.
            Defaults to 0.25.
        high_resolution_scale: int >= 1. Defaults to 2.
        **kwargs: `keras.Model` arguments.
    """

    supports_gradient_cache = False  # the dense term is per example; the recipe refuses the two together
    training_batch_spec = {"images": ("float", 4), "token_ids": ("int32", 2), "labels": ("int64", 1),
                           "dense_labels": ("float", 4)}

    def __init__(self, backbone, preprocessor=None, dense_class_counts=(3, 9, 9), dense_weight=1.0, sub_cells=4,
                 image_detail=True, background_weight=0.9, high_resolution_fraction=0.25, high_resolution_scale=2,
                 **kwargs):
        encoder = backbone.image_encoder
        if not hasattr(encoder, "forward_features"):
            raise ValueError(f"FlorenceDensePretrainer reads CoSwin feature maps; this backbone's image encoder is a "
                             f"{type(encoder).__name__}.")
        if not float(dense_weight) >= 0.0:
            raise ValueError(f"`dense_weight` must be >= 0. Received: dense_weight={dense_weight!r}")
        if not 0.0 <= float(high_resolution_fraction) <= 1.0:
            raise ValueError(f"`high_resolution_fraction` must be in [0, 1]. Received: {high_resolution_fraction!r}")
        if not isinstance(high_resolution_scale, int) or high_resolution_scale < 1:
            raise ValueError(f"`high_resolution_scale` must be a positive int. Received: {high_resolution_scale!r}")
        if not 0.0 <= float(background_weight) < 1.0:
            raise ValueError(f"`background_weight` must be in [0, 1). Received: {background_weight!r}")
        # === Config ===
        self.dense_class_counts = tuple(int(c) for c in dense_class_counts)
        self.dense_weight = float(dense_weight)
        self.sub_cells = sub_cells
        self.image_detail = bool(image_detail)
        self.background_weight = float(background_weight)
        self.high_resolution_fraction = float(high_resolution_fraction)
        self.high_resolution_scale = high_resolution_scale
        # === Layers ===
        self.dense_head = DenseLabelHead(self.dense_class_counts, sub_cells, name="dense_head")
        super().__init__(backbone, preprocessor, **kwargs)
        size = int(encoder.image_shape[0])
        features = encoder.forward_features(keras.ops.zeros((1, size, size, 3)), training=False)
        self.dense_head.build(tuple(image_map(features, None, self.image_detail).shape))

    def clip(self):
        """The `FlorenceCLIP` this trains (the same backbone and preprocessor, no dense head)."""
        return FlorenceCLIP(backbone=self.backbone, preprocessor=self.preprocessor)

    def dense_logits(self, features):
        """The head's logits `(B, h·s, w·s, sum(dense_class_counts))` from `forward_features` outputs."""
        return self.dense_head(image_map(features, None, self.image_detail))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        raise NotImplementedError(
            "FlorenceDensePretrainer trains with the toolkit's trainer (`pretrain_unicl(dense_aux_weight=...)` or "
            "`UniCLTrainer`), whose batches carry `dense_labels`; Keras `fit` would skip its dense loss.")

    def loss_terms(self, x, y, replica_context=None, training=True):
        """`{"loss", "unicl", "dense"}`: this replica's shares (see `FlorenceCLIP.loss_from_embeddings`)."""
        if "dense_labels" not in x:
            raise ValueError("FlorenceDensePretrainer trains on batches with `dense_labels` (per-pixel class "
                             "fractions, `make_image_text_input_fn(dense_labels=...)`).")
        encoder = self.backbone.image_encoder
        images = x["images"]
        features = encoder.forward_features(images, training=training)
        image_embeddings = self.backbone.image_normalize(self.backbone.image_projection(features["pooled_output"]))
        text_embeddings = self.backbone.embed_texts(x["token_ids"], training=training)
        contrastive = unicl_loss(image_embeddings, text_embeddings, y, self.backbone.logit_scale(),
                                 replica_context=replica_context)
        labels = ops.cast(x["dense_labels"], "float32")
        dense = dense_label_loss(self.dense_logits(features), labels, self.dense_class_counts,
                                 self.background_weight, replica_context)
        rows = int(round(self.high_resolution_fraction * int(images.shape[0])))
        if rows > 0 and self.high_resolution_scale > 1:
            size = int(images.shape[1]) * self.high_resolution_scale
            larger = tf.image.resize(images[:rows], (size, size), method="bilinear")
            larger_features = encoder.forward_features(larger, training=training)
            dense = dense + self.high_resolution_fraction * dense_label_loss(
                self.dense_logits(larger_features), labels[:rows], self.dense_class_counts, self.background_weight,
                replica_context)
        return {"loss": contrastive + self.dense_weight * dense, "unicl": contrastive, "dense": dense}

    def replica_loss(self, x, y, replica_context=None, training=True):
        """UniCL + `dense_weight` × the dense-label loss: one replica's step loss."""
        return self.loss_terms(x, y, replica_context, training)["loss"]

    def get_config(self):
        config = super().get_config()
        config.update({"dense_class_counts": list(self.dense_class_counts), "dense_weight": self.dense_weight,
                       "sub_cells": self.sub_cells, "image_detail": self.image_detail,
                       "background_weight": self.background_weight,
                       "high_resolution_fraction": self.high_resolution_fraction,
                       "high_resolution_scale": self.high_resolution_scale})
        return config

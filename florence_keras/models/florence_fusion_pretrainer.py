"""FlorenceFusionPretrainer: METER's fusion pretraining (ITM with in-batch hard negatives + MLM) as a keras-hub Task."""

import keras
import tensorflow as tf
from keras import ops

from florence_keras.layers.fusion_encoder import FusionEncoder
from florence_keras.layers.masked_lm_head import MaskedLMHead
from florence_keras.losses.fusion_pretraining_losses import itm_loss
from florence_keras.losses.fusion_pretraining_losses import masked_lm_loss
from florence_keras.losses.hard_negative_sampler import negative_candidates
from florence_keras.losses.hard_negative_sampler import sample_hard_negatives
from florence_keras.models import fusion_tokens
from florence_keras.models import mlm_masking
from florence_keras.models import token_packing
from florence_keras.models.florence_backbone import FlorenceBackbone
from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
from florence_keras.models.florence_task import FlorenceTask


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceFusionPretrainer(FlorenceTask):
    """Pretrains the METER fusion stack of `FlorenceVQA` on image-text pairs (SPEC §3, the modality axis).

    The model is `FlorenceVQA`'s without its answer head: CoSwin image tokens (the last stage's map after the final
    norm, preceded by its mean; or stage `image_token_stage`'s map through its own LayerNorm) and the text encoder's
    `sequence_output` (its first state replaced by the end token's, `fusion_tokens.text_tokens`; everything after
    the first end token masked), fused by a `FusionEncoder` built with the
    same names, so a `FlorenceVQA` with the same fusion settings starts from these weights
    (`FlorenceVQA.from_preset(<this preset>, ...)`, see `fusion_weights.copy_fusion_weights`).

    Two objectives (METER, Dou et al. 2022; negatives as ALBEF, Li et al. 2021):

    * **ITM**: `Dense(2)` on the fused pooled output says whether an image and a text belong together. Per batch:
      the B positive pairs; for each image a negative text, and for each text a negative image, drawn from the
      other examples with probability ∝ softmax of the contrastive similarities (the backbone's CLIP embeddings ×
      logit scale, no gradient), never a positive: not the same example, the same text, or the same label
      (`labels`, e.g. the image's index, when the batch has them); see `losses.hard_negative_sampler`. 2-way
      cross-entropy over the 3B pairs (a query with no possible negative drops its negative pair).
    * **MLM**: `mlm_rate` (15%) of each text's tokens (never the start, end or padding) are chosen; 80% become the
      mask token, 10% a random regular token, 10% stay (`models.mlm_masking`). The masked text goes through the
      text encoder and the fusion with its image; a `MaskedLMHead` (Dense → GELU → LayerNorm → decoder) on the
      fused text tokens at the chosen positions predicts the original ids; cross-entropy over those positions only.
      The decoder is tied to the text encoder's token embedding (`tie_mlm_decoder=True`, default) or an own Dense.
      The CLIP vocabulary has no mask token: `mask_token_id` defaults to the start-of-text id, which real text only
      has at position 0, so it is unambiguous (the text encoder has position embeddings).

    `loss = itm_weight · ITM + mlm_weight · MLM`. The image encoder, text encoder and fusion are trained (the CLIP
    projections and logit scale only rank negatives and are frozen). ITM sees the clean text; one fusion call
    runs the 3B ITM pairs and the B masked texts together.

    Calling the Task on `{"images": normalised (B, S, S, 3), "token_ids": int32 (B, text_length)}` returns the ITM
    logits `(B, 2)` of the given pairs (column 1 = matched). `match_scores(images, texts)` takes raw images and
    strings. Batches for the toolkit's trainer: `{"images", "token_ids"}` and optional `labels` (int, the positive
    group of each example).

    Args:
        backbone: a `FlorenceBackbone` (its `image_encoder` a `CoSwinBackbone`).
        preprocessor: a `FlorenceCLIPPreprocessor`. Optional (needed for strings and raw images).
        image_size: int, the square input size; defaults to the image encoder's.
        text_length: int, text tokens (start and end included). Defaults to 32.
        fusion_dim, fusion_layers, fusion_heads, fusion_intermediate_dim, dropout, image_token_stage: the fusion
            stack, as `FlorenceVQA`'s (defaults 768 / 6 / 12 / 4·dim / 0.1 / None: METER's).
        mlm_rate: float, the fraction of a text's maskable tokens predicted. Defaults to 0.15.
        mask_token_id: int; default: the tokenizer's start-of-text id (CLIP: 49406).
        tie_mlm_decoder: bool. Defaults to True.
        itm_weight, mlm_weight: float, the objectives' weights. Default 1.
        seed: int or None, the sampling seed (negatives, masking).
        **kwargs: `keras.Model` arguments.

    Example:
    >>> pretrainer = FlorenceFusionPretrainer.from_preset("florence_mini_builtin", fusion_dim=128,
    ...                                                   fusion_layers=2, fusion_heads=4)   # doctest: +SKIP
    >>> pretrainer.loss_terms({"images": images, "token_ids": ids})["loss"]   # doctest: +SKIP
    """

    backbone_cls = FlorenceBackbone
    preprocessor_cls = FlorenceCLIPPreprocessor
    training_batch_spec = {"images": ("float", 4), "token_ids": ("int32", 2)}

    def __init__(self, backbone, preprocessor=None, image_size=None, text_length=32, fusion_dim=768,
                 fusion_layers=6, fusion_heads=12, fusion_intermediate_dim=None, dropout=0.1, image_token_stage=None,
                 mlm_rate=0.15, mask_token_id=None, tie_mlm_decoder=True, itm_weight=1.0, mlm_weight=1.0, seed=None,
                 **kwargs):
        encoder = backbone.image_encoder
        if not hasattr(encoder, "forward_features"):
            raise ValueError(f"FlorenceFusionPretrainer reads CoSwin tokens; this backbone's image encoder is a "
                             f"{type(encoder).__name__}.")
        image_size = int(encoder.image_shape[0]) if image_size is None else image_size
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"`image_size` must be a positive int. Received: image_size={image_size!r}")
        text_encoder = backbone.text_encoder
        max_length = int(text_encoder.max_sequence_length)
        if not isinstance(text_length, int) or not 2 < text_length <= max_length:
            raise ValueError(f"`text_length` must be an int in 3..{max_length} (the text encoder's context). "
                             f"Received: text_length={text_length!r}")
        if not 0.0 < float(mlm_rate) <= 1.0:
            raise ValueError(f"`mlm_rate` must be in (0, 1]. Received: mlm_rate={mlm_rate!r}")
        if itm_weight < 0 or mlm_weight < 0 or itm_weight + mlm_weight <= 0:
            raise ValueError(f"`itm_weight` and `mlm_weight` must be >= 0, not both 0. Received: {itm_weight!r}, "
                             f"{mlm_weight!r}")
        vocabulary_size = int(text_encoder.vocabulary_size)
        self.eos_token_id = int(text_encoder.eos_token_id)
        # The start id: the tokenizer's (None while a preset's vocabulary is not loaded yet), else CLIP's end - 1.
        start_token_id = getattr(getattr(preprocessor, "tokenizer", None), "start_token_id", None)
        self.start_token_id = self.eos_token_id - 1 if start_token_id is None else int(start_token_id)
        mask_token_id = self.start_token_id if mask_token_id is None else int(mask_token_id)
        if not 0 <= mask_token_id < vocabulary_size or mask_token_id == self.eos_token_id:
            raise ValueError(f"`mask_token_id` must be an id below {vocabulary_size} other than the end token "
                             f"{self.eos_token_id}. Received: mask_token_id={mask_token_id!r}")
        # === Config === (before the functional model: keras-hub's Task compiles in its constructor)
        self.image_size = image_size
        self.text_length = text_length
        self.fusion_dim = fusion_dim
        self.fusion_layers = fusion_layers
        self.fusion_heads = fusion_heads
        self.dropout = float(dropout)
        self.mlm_rate = float(mlm_rate)
        self.mask_token_id = mask_token_id
        self.tie_mlm_decoder = bool(tie_mlm_decoder)
        self.itm_weight = float(itm_weight)
        self.mlm_weight = float(mlm_weight)
        self.seed = seed
        # Random replacements are regular BPE ids: below the special ids, which the CLIP vocabulary puts last.
        self.random_token_high = min(self.start_token_id, self.eos_token_id)
        self.max_predictions = mlm_masking.max_predictions_for(text_length, self.mlm_rate)
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        for unused in (backbone.text_projection, backbone.image_projection, backbone.logit_scale_layer):
            unused.trainable = False  # they only rank the hard negatives
        policy = dict(dtype=backbone.dtype_policy)
        self.fusion = FusionEncoder(fusion_dim, fusion_layers, fusion_heads, fusion_intermediate_dim, dropout,
                                    name="fusion", **policy)
        self.fusion_intermediate_dim = self.fusion.intermediate_dim
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.itm_head = keras.layers.Dense(2, kernel_initializer=init, name="itm_head", dtype="float32")
        embedding_dim = int(text_encoder.hidden_dim) if self.tie_mlm_decoder else fusion_dim
        self.mlm_head = MaskedLMHead(vocabulary_size, embedding_dim, tied=self.tie_mlm_decoder, name="mlm_head",
                                     **policy)
        self.seed_generator = keras.random.SeedGenerator(seed, name="sampling_seed")
        # === Functional model ===
        fusion_tokens.check_image_token_stage(image_token_stage, len(encoder.stages))
        self.image_token_stage = image_token_stage
        if image_token_stage is not None:
            encoder.final_norm.trainable = False  # not on the token path (it still pools the negatives' ranking)
            self.image_token_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="image_token_norm", **policy)
        images = keras.Input(shape=(image_size, image_size, 3), name="images")
        token_ids = keras.Input(shape=(text_length,), dtype="int32", name="token_ids")
        image_tokens, _ = self._image_tokens(images)
        text_mask = self.text_mask(token_ids)
        text_tokens = fusion_tokens.text_tokens(text_encoder(token_ids)["sequence_output"], text_mask)
        fused = self.fusion(text_tokens, image_tokens, text_mask=text_mask)
        logits = self.itm_head(fused["pooled_output"])
        self.mlm_head.build((None, fusion_dim))
        super().__init__(inputs={"images": images, "token_ids": token_ids}, outputs=logits, **kwargs)

    # ------------------------------------------------------------------------------------------------
    # Tokens.

    def _image_tokens(self, images, training=None):
        """`(image tokens (B, 1 + h·w, C), pooled features (B, C))`: the map's mean first, as `FlorenceVQA`."""
        features = self.backbone.image_encoder.forward_features(images, training=training)
        tokens = fusion_tokens.image_tokens(features, self.image_token_stage, getattr(self, "image_token_norm", None))
        return tokens, features["pooled_output"]

    def text_mask(self, token_ids):
        """int32 `(B, L)`: 1 up to and including the first end-of-text token, 0 after (the padding)."""
        return fusion_tokens.text_mask(token_ids, self.eos_token_id)

    def tokenize_texts(self, texts):
        """Strings `(B,)` (or one) -> int32 `(B, text_length)`: start token, BPE tokens (cut so the end token
        fits), end token, end-token padding (`token_packing.tokenize_and_pack`). TensorFlow ops."""
        if self.preprocessor is None or self.preprocessor.tokenizer is None:
            raise ValueError("This FlorenceFusionPretrainer has no tokenizer; pass token ids instead.")
        return token_packing.tokenize_and_pack(self.preprocessor.tokenizer, texts, self.text_length, "texts")

    def mask_for_mlm(self, token_ids):
        """`mlm_masking.mask_tokens` with this model's special ids, mask token and rate (a fresh draw each call)."""
        maskable = mlm_masking.maskable_positions(token_ids, self.eos_token_id,
                                                  special_token_ids=(self.start_token_id, self.mask_token_id))
        return mlm_masking.mask_tokens(token_ids, maskable, self.mask_token_id, self.random_token_high,
                                       rate=self.mlm_rate, max_predictions=self.max_predictions,
                                       seed=self.seed_generator)

    def mlm_logits(self, fused_text_states):
        """float32 `(..., V)` MLM logits of fused text states `(..., fusion_dim)`."""
        embeddings = self.backbone.text_encoder.embedding.token_embedding.embeddings if self.tie_mlm_decoder \
            else None
        return self.mlm_head(fused_text_states, embeddings)

    # ------------------------------------------------------------------------------------------------
    # Training.

    def loss_terms(self, x, labels=None, training=True):
        """The pretraining losses on a batch `x = {"images", "token_ids"}` (+ optional `labels` `(B,)`).

        Returns:
            dict of float32 scalars: `loss` (weighted sum), `itm`, `mlm`, `itm_accuracy` (over the ITM pairs
            used), `negatives_found` (fraction of the 2B queries that had a negative).
        """
        images = x["images"]
        token_ids = ops.cast(x["token_ids"], "int32")
        if labels is None:
            labels = x.get("labels") if isinstance(x, dict) else None
        backbone = self.backbone
        image_tokens, image_pooled = self._image_tokens(images, training=training)
        masked = self.mask_for_mlm(token_ids)
        both = ops.concatenate([token_ids, masked["token_ids"]], axis=0)
        text_out = backbone.text_encoder(both, training=training)
        batch = ops.shape(token_ids)[0]
        both_mask = self.text_mask(both)
        both_tokens = fusion_tokens.text_tokens(text_out["sequence_output"], both_mask)
        text_tokens, masked_tokens = both_tokens[:batch], both_tokens[batch:]

        # Hard negatives from the contrastive similarities (no gradient).
        image_embeddings = backbone.image_normalize(backbone.image_projection(image_pooled))
        text_embeddings = backbone.text_normalize(backbone.text_projection(text_out["pooled_output"][:batch]))
        scale = backbone.logit_scale_layer(image_embeddings)
        similarities = ops.stop_gradient(ops.cast(scale, "float32") * ops.matmul(
            ops.cast(image_embeddings, "float32"), ops.transpose(ops.cast(text_embeddings, "float32"))))
        candidates = negative_candidates(token_ids, labels)
        negative_text, text_found = sample_hard_negatives(similarities, candidates, seed=self.seed_generator)
        negative_image, image_found = sample_hard_negatives(ops.transpose(similarities), candidates,
                                                            seed=self.seed_generator)

        # One fusion call: [positives, (image, negative text), (negative image, text), masked texts].
        text_mask = both_mask[:batch]
        fused = self.fusion(
            ops.concatenate([text_tokens, ops.take(text_tokens, negative_text, axis=0), text_tokens,
                             masked_tokens], axis=0),
            ops.concatenate([image_tokens, image_tokens, ops.take(image_tokens, negative_image, axis=0),
                             image_tokens], axis=0),
            text_mask=ops.concatenate([text_mask, ops.take(text_mask, negative_text, axis=0), text_mask,
                                       both_mask[batch:]], axis=0),
            training=training)
        itm_logits = self.itm_head(fused["pooled_output"][:3 * batch])
        matched = ops.concatenate([ops.ones((batch,), "int32"), ops.zeros((2 * batch,), "int32")], axis=0)
        pair_weights = ops.concatenate([ops.ones((batch,), "float32"), ops.cast(text_found, "float32"),
                                        ops.cast(image_found, "float32")], axis=0)
        itm = itm_loss(itm_logits, matched, pair_weights)

        masked_states = fused["text_sequence"][3 * batch:]
        gathered = ops.take_along_axis(masked_states, masked["positions"][:, :, None], axis=1)
        mlm = masked_lm_loss(self.mlm_logits(gathered), masked["targets"], masked["weights"])

        correct = ops.cast(ops.equal(ops.cast(ops.argmax(itm_logits, axis=-1), "int32"), matched), "float32")
        return {
            "loss": self.itm_weight * itm + self.mlm_weight * mlm,
            "itm": itm,
            "mlm": mlm,
            "itm_accuracy": ops.sum(correct * pair_weights) / ops.sum(pair_weights),
            "negatives_found": ops.mean(ops.cast(ops.concatenate([text_found, image_found], axis=0), "float32")),
        }

    def check_training_batch(self, element_spec, image_size=None):
        """Raises a clear ValueError unless batches are `{"images": (B, S, S, 3), "token_ids": int32 (B,
        text_length)}` (+ optional int `labels`)."""
        super().check_training_batch(element_spec, image_size)
        if image_size is not None and image_size != self.image_size:
            raise ValueError(f"This pretrainer takes {self.image_size}x{self.image_size} images; training asks for "
                             f"{image_size}x{image_size}. Build it with image_size={image_size}.")
        ids = element_spec["token_ids"]
        if ids.shape[1] != self.text_length:
            raise ValueError(f"'token_ids' must be int32 (B, {self.text_length}). Received: {ids}")

    def replica_loss(self, x, y=None, replica_context=None, training=True):
        """One replica's share of the loss: its batch's `loss_terms(...)["loss"]` / the number of replicas (each
        term is a mean over the replica's pairs / masked tokens, so the replicas' shares sum to their mean). `y`
        (the trainer's `labels`) is the positive group of each example, when the batch has one."""
        if not isinstance(x, dict) or {"images", "token_ids"} - set(x):
            raise ValueError("Fusion pretraining batches are {'images', 'token_ids', ...}. Received: "
                             f"{sorted(x) if isinstance(x, dict) else type(x).__name__}")
        loss = self.loss_terms(x, y, training=training)["loss"]
        replicas = 1 if replica_context is None else replica_context.num_replicas_in_sync
        return self.with_layer_losses(loss / replicas)

    def default_loss(self):
        """None: the objectives are the Task's own (`loss_terms`); `fit` calls them through `compute_loss`."""
        return None

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """`fit` on `x = {"images", "token_ids"}` (y: optional labels): the ITM + MLM loss of `loss_terms`."""
        del y_pred, sample_weight
        return self.with_layer_losses(self.loss_terms(x, y, training=training)["loss"])

    def preprocess_samples(self, x, y=None, sample_weight=None):
        """`fit` takes `{"images", "token_ids"}` batches (and optional labels): passed unchanged."""
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    # ------------------------------------------------------------------------------------------------
    # Inference.

    def match_scores(self, images, texts):
        """P(matched) `(B,)` float32 numpy for raw images `(B, H, W, C)` in `[0, 255]` and B strings."""
        import numpy as np

        if self.preprocessor is None or self.preprocessor.image_converter is None:
            raise ValueError("This FlorenceFusionPretrainer has no image converter; call it on normalised images.")
        images = ops.cast(ops.convert_to_tensor(images), "float32")
        if tuple(images.shape[1:3]) != (self.image_size, self.image_size):
            images = ops.image.resize(images, (self.image_size, self.image_size), interpolation="bilinear",
                                      antialias=True)
        images = self.preprocessor.image_converter.normalizer()(images)
        logits = self({"images": images, "token_ids": self.tokenize_texts(tf.constant(list(texts)))},
                      training=False)
        return np.asarray(ops.softmax(ops.cast(logits, "float32"), axis=-1)[:, 1])

    def get_config(self):
        config = super().get_config()
        config.update({"image_size": self.image_size, "text_length": self.text_length,
                       "fusion_dim": self.fusion_dim, "fusion_layers": self.fusion_layers,
                       "fusion_heads": self.fusion_heads, "fusion_intermediate_dim": self.fusion_intermediate_dim,
                       "dropout": self.dropout, "image_token_stage": self.image_token_stage,
                       "mlm_rate": self.mlm_rate, "mask_token_id": self.mask_token_id,
                       "tie_mlm_decoder": self.tie_mlm_decoder, "itm_weight": self.itm_weight,
                       "mlm_weight": self.mlm_weight, "seed": self.seed})
        return config

"""FlorenceVQA: visual question answering with METER co-attention over CoSwin and text tokens, as a keras-hub Task."""

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras import ops

from florence_keras.layers.dense_label_decoder import DenseLabelDecoder
from florence_keras.layers.depth_upsampling_head import upsampling_steps
from florence_keras.layers.fusion_encoder import FusionEncoder
from florence_keras.layers.summary_token_dropout import SummaryTokenDropout
from florence_keras.models import fusion_tokens
from florence_keras.models import token_packing
from florence_keras.models.florence_backbone import FlorenceBackbone
from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
from florence_keras.models.florence_task import FlorenceTask

# The VQA v2 answer types (the annotations' `answer_type`), the classes of `FlorenceVQA(answer_types=...)`.
ANSWER_TYPES = ("yes/no", "number", "other")


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceVQA(FlorenceTask):
    """Image + question -> answer over a fixed answer vocabulary (METER's VQA head; SPEC §3, the modality axis).

    Image tokens: the CoSwin encoder's last-stage map (after its final norm), `h·w` tokens, preceded by their mean
    (the image stream's first, pooled token, as METER does with Swin). Question tokens: the text encoder's
    `sequence_output` (start token first); positions after the first end-of-text token are padding and are masked
    in the fusion. A `FusionEncoder` (co-attention, `fusion_layers` deep) fuses them; its pooled output
    `(B, 2·fusion_dim)` goes through the head `Dense(2·fusion_dim) -> LayerNorm -> GELU -> Dense(#answers)`.

    Calling the Task on `{"images": normalised (B, S, S, 3), "token_ids": int32 (B, question_length)}` returns the
    answer logits `(B, len(answer_vocabulary))`. `predict(images, questions)` takes raw images and strings and
    returns the answers and their scores (sigmoid of the best logit).

    Training: soft targets `answer_scores` (0.3/0.6/0.9/1.0 for 1/2/3/>=4 agreeing humans, see
    `florence_keras.data.vqa_targets`) and binary cross-entropy with logits summed over the answers and averaged
    over the questions (METER's `BCE(mean) × #answers`). The training system calls `replica_loss` with batches
    `{"images", "token_ids", "answer_scores", ...}`; `fit` takes `x = {"images", "token_ids"}`,
    `y = answer_scores`. The CLIP projections and logit scale are not used and are frozen.

    Args:
        backbone: a `FlorenceBackbone` (its `image_encoder` a `CoSwinBackbone`).
        preprocessor: a `FlorenceCLIPPreprocessor` (tokenizer + image converter). Optional.
        answer_vocabulary: list of str (required), the answers (normalised as the official evaluator normalises
            answers).
        image_size: int, the square input size; defaults to the image encoder's.
        question_length: int, question tokens (start and end tokens included). Defaults to 32.
        fusion_dim, fusion_layers, fusion_heads: the fusion stack. Defaults 768 / 6 / 12 (METER).
        fusion_intermediate_dim: FFN width. Defaults to `4 * fusion_dim`.
        dropout: float, the fusion's dropout. Defaults to 0.1.
        image_token_stage: None (default: the last stage, after the encoder's final norm) or an int stage index
            `k` (0-based): that stage's output map `P{k+2}` (more, finer tokens), through its own LayerNorm.
        image_position_embedding: bool, add a learned embedding per image token position (keras-hub's
            `PositionEmbedding`) before the fusion. Default True. Co-attention is blind to the order of its
            keys and CoSwin's attention biases are relative, so this is the fusion's only explicit source of
            position (on the built-in scenes it measured neutral, docs/vqa.md: the convolutional patch
            embedding's zero padding already tells border cells where they are). A preset saved before this
            argument existed loads with it off.
        image_scales: list of distinct positive ints, default `[1]`: the image is also encoded resized by each
            factor (bilinear; `[1, 2]`: at `image_size` and at twice it). Each scale's map goes through its own
            LayerNorm + projection and the cells of all scales are concatenated after one mean token (multi-scale
            tokens as in S², Shi et al. 2024). Finer scales give each token fewer objects to describe: on the
            built-in scenes `[1, 2]` lifts "what colour is the X" from 39.5 to 67.8 (docs/vqa.md). A preset saved
            before this argument existed loads with `[1]`.
        image_detail: bool, default False. Each image token also carries the raw output of the stage before the
            token stage at the 2×2 cells beneath it (space-to-depth, `fusion_tokens.fold_cells`), each folded cell
            through one LayerNorm: `(h, w, C + 4·C/2)`; with several scales each scale's projection maps that back
            to `C`. The last stage pools an object's outline into a cell that mixes several objects; the stage
            before keeps it. Same number of tokens. A preset saved before this argument existed loads with False.
        image_summary: `"mean"` (default) or `"pooled"`: the image stream's first token, the one its pooler reads.
            `"mean"`: the mean of the other image tokens (after the scales' projections). `"pooled"`: the encoder's
            own pooled features, i.e. the first scale's token-stage channels averaged over its cells (for the last
            stage, what the CLIP projection and the contrastive loss see), through a LayerNorm and a projection to
            the tokens' width: the image counterpart of the text stream's first token, the end token's state
            (`fusion_tokens.text_tokens`). The mean of several scales' projected cells mixes scales the encoder
            was not trained to pool together. A preset saved before this argument existed loads with "mean".
        text_summary_dropout: float in `[0, 1]`, default 0. In training, the text stream's first token (the
            question's summary, the end token's state) is zeroed for this fraction of the questions
            (`SummaryTokenDropout`), so the fusion also learns to read the question's other tokens; at inference
            nothing changes. A causal encoder's summary is the one token that has seen the whole question,
            including an attribute-object phrase never seen in training; on the built-in scenes (eight held-out
            shape-colour pairs) 0.3 removes answers of the wrong type ("yes" to "which side is the cyan hexagon
            on?") but leaves the overall accuracy where it was over ten runs (docs/vqa.md, session 19).
        question_prior: bool, default False. A question-only branch (the head's shape on the question's summary
            token, its input cut from the gradient) is trained beside the fusion as a product of experts (Clark et
            al. 2019; RUBi, Cadene et al. 2019): the loss is `BCE(fusion + branch) + BCE(branch)`, with the
            branch's share of the sum cut from the gradient, so the fusion learns what the question alone does not
            already tell. At inference (`question_prior_inference`) the Task's logits are the fusion's + the
            branch's log-probability of the answer's type + its log-share of the answer within the type, floored
            at `log(question_prior_floor)`: the question picks the kind of answer and keeps its mild preferences,
            but never rules out an answer of the right kind. For held-out data whose answer priors differ from
            training's (VQA-CP; the built-in split's unseen shape-colour pairs: "what shape is the cyan object?"
            is never "hexagon" in training, docs/vqa.md, session 20).
        answer_types: list of `ANSWER_TYPES` strings, one per answer (`vocabulary_answer_types` of the training
            annotations); default all "other". Used by `question_prior`'s inference.
        question_prior_floor: float in `[0, 1]`, default 0.1: the least share of its type's question-only mass an
            answer is given at inference (1: the type alone; 0: the branch's full preferences within the type).
            Inference only: a trained model's floor can be changed without retraining.
        grounding_weight: float >= 0, default 0. Training only: the weight of an attention target on the fusion's
            text-to-image cross-attention. When a training batch carries `grounding_positions` int `(B, K)` (text
            positions naming an object, -1 for none) and `grounding_targets` `(B, K, Li)` (a distribution over
            the image tokens: where that object is), `replica_loss` adds, per question, `grounding_weight ×`
            the cross-entropy of each target against the attention of its position (mean over heads), averaged
            over the fusion layers and summed over the named positions. It ties each named object to its own
            image tokens (on the built-in scenes, from the renderer's masks: `florence_keras.data.vqa_grounding`;
            docs/vqa.md, session 24). Batches without the keys train as before.
        dense_label_classes: int, default 0 (none). With K >= 2, a `DenseLabelDecoder` (`dense_label_decoder`)
            reads the encoder's feature pyramid of the image (at scale 1) and gives K class probabilities per
            pixel; averaged over `dense_label_sub_cells²` sub-blocks of each image token's cell, they join the
            token's own channels (`sub_cells² · K` more, before any `image_detail` cells). The decoder is frozen
            here and its output cut from the gradient: it is fitted before the VQA on per-pixel labels
            (`florence_keras.training.dense_label_fitting.fit_dense_label_decoder`; on the built-in scenes the
            occlusion code of `scene.dense_label_map`, so that a token says which of its objects is partly
            hidden, what the last stage pools away: docs/vqa.md, session 26). Its weights are the Task's: saved
            with the preset, used by `predict` and serving. A preset saved before this argument existed loads
            with 0.
        dense_label_channels: int, the decoder's width. Defaults to 96.
        dense_label_sub_cells: int >= 1, sub-blocks per side of each token's cell. Defaults to 4.
        dense_label_upsamplings: None or int >= 0, the decoder's ×2 upsampling units after its finest level (the
            encoder's patch stride). None (the default): up to the image's resolution; fewer cost less (the units
            at full resolution are most of the decoder's work) and the logits are resized bilinearly to the image.
        **kwargs: `keras.Model` arguments.

    Training on cached features: with a frozen backbone, `encode(images, token_ids)` gives the frozen half's
    output (`image_map`, `text_tokens`, `text_mask`) once per image and question, and `replica_loss` also takes
    batches of those (`FEATURE_KEYS` + `answer_scores`): every step then runs only the fusion and the head
    (recipes/train_vqa.py `--freeze_backbone`).

    Example:
    >>> vqa = FlorenceVQA.from_preset("florence_mini_builtin", answer_vocabulary=["yes", "no"],
    ...                               fusion_dim=64, fusion_layers=2, fusion_heads=4)   # doctest: +SKIP
    >>> vqa.predict(images, ["is there a circle?"])["answers"]   # doctest: +SKIP
    """

    backbone_cls = FlorenceBackbone
    preprocessor_cls = FlorenceCLIPPreprocessor

    def __init__(self, backbone, preprocessor=None, answer_vocabulary=None, image_size=None, question_length=32,
                 fusion_dim=768, fusion_layers=6, fusion_heads=12, fusion_intermediate_dim=None, dropout=0.1,
                 image_token_stage=None, image_position_embedding=True, image_scales=(1,), image_detail=False,
                 image_summary="mean", text_summary_dropout=0.0, question_prior=False, answer_types=None,
                 question_prior_floor=0.1, grounding_weight=0.0, dense_label_classes=0, dense_label_channels=96,
                 dense_label_sub_cells=4, dense_label_upsamplings=None, **kwargs):
        encoder = backbone.image_encoder
        if not hasattr(encoder, "forward_features"):
            raise ValueError(f"FlorenceVQA reads CoSwin tokens; this backbone's image encoder is a "
                             f"{type(encoder).__name__}.")
        answer_vocabulary = list(answer_vocabulary or [])
        if not answer_vocabulary or not all(isinstance(a, str) for a in answer_vocabulary):
            raise ValueError("`answer_vocabulary` must be a non-empty list of strings.")
        if len(set(answer_vocabulary)) != len(answer_vocabulary):
            raise ValueError("`answer_vocabulary` holds duplicate answers.")
        image_size = int(encoder.image_shape[0]) if image_size is None else image_size
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"`image_size` must be a positive int. Received: image_size={image_size!r}")
        max_length = int(backbone.sequence_length)
        if not isinstance(question_length, int) or not 2 < question_length <= max_length:
            raise ValueError(f"`question_length` must be an int in 3..{max_length} (the text encoder's context). "
                             f"Received: question_length={question_length!r}")
        # === Config === (before the functional model: keras-hub's Task compiles in its constructor)
        self.answer_vocabulary = answer_vocabulary
        self.image_size = image_size
        self.question_length = question_length
        self.fusion_dim = fusion_dim
        self.fusion_layers = fusion_layers
        self.fusion_heads = fusion_heads
        self.dropout = float(dropout)
        self.image_position_embedding = bool(image_position_embedding)
        self.image_scales = fusion_tokens.check_image_scales(image_scales)
        self.image_detail = bool(image_detail)
        if image_summary not in self.IMAGE_SUMMARIES:
            raise ValueError(f"`image_summary` must be one of {self.IMAGE_SUMMARIES}. Received: "
                             f"image_summary={image_summary!r}")
        self.image_summary = image_summary
        self.question_prior = bool(question_prior)
        answer_types = ["other"] * len(answer_vocabulary) if answer_types is None else list(answer_types)
        if len(answer_types) != len(answer_vocabulary) or any(t not in ANSWER_TYPES for t in answer_types):
            raise ValueError(f"`answer_types` must give one of {ANSWER_TYPES} per answer of the vocabulary "
                             f"({len(answer_vocabulary)}). Received {len(answer_types)} entries: "
                             f"{sorted(set(map(str, answer_types)))}")
        self.answer_types = answer_types
        if isinstance(question_prior_floor, bool) or not isinstance(question_prior_floor, (int, float)) or not (
                0.0 <= question_prior_floor <= 1.0):
            raise ValueError(f"`question_prior_floor` must be a number in [0, 1]. Received: "
                             f"question_prior_floor={question_prior_floor!r}")
        self.question_prior_floor = float(question_prior_floor)
        if isinstance(grounding_weight, bool) or not isinstance(grounding_weight, (int, float)) or not (
                grounding_weight >= 0.0):
            raise ValueError(f"`grounding_weight` must be a number >= 0. Received: "
                             f"grounding_weight={grounding_weight!r}")
        self.grounding_weight = float(grounding_weight)
        for name, value, least in (("dense_label_classes", dense_label_classes, 0),
                                   ("dense_label_channels", dense_label_channels, 1),
                                   ("dense_label_sub_cells", dense_label_sub_cells, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least or (
                    name == "dense_label_classes" and value == 1):
                raise ValueError(f"`{name}` must be an int >= {least}{' other than 1' if least == 0 else ''}. "
                                 f"Received: {name}={value!r}")
        if dense_label_upsamplings is not None and (isinstance(dense_label_upsamplings, bool) or not isinstance(
                dense_label_upsamplings, int) or dense_label_upsamplings < 0):
            raise ValueError(f"`dense_label_upsamplings` must be None or an int >= 0. Received: "
                             f"dense_label_upsamplings={dense_label_upsamplings!r}")
        self.dense_label_classes = dense_label_classes
        self.dense_label_channels = dense_label_channels
        self.dense_label_sub_cells = dense_label_sub_cells
        self.dense_label_upsamplings = dense_label_upsamplings
        self.eos_token_id = int(backbone.text_encoder.eos_token_id)
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        policy = dict(dtype=backbone.dtype_policy)
        self.fusion = FusionEncoder(fusion_dim, fusion_layers, fusion_heads, fusion_intermediate_dim, dropout,
                                    name="fusion", **policy)
        self.fusion_intermediate_dim = self.fusion.intermediate_dim
        self.text_summary_drop = SummaryTokenDropout(text_summary_dropout, name="text_summary_dropout", **policy)
        self.text_summary_dropout = self.text_summary_drop.rate
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.head_dense = keras.layers.Dense(2 * fusion_dim, kernel_initializer=init, name="head_dense", **policy)
        self.head_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="head_norm", **policy)
        self.head_output = keras.layers.Dense(len(answer_vocabulary), kernel_initializer=init, name="head_output",
                                              dtype="float32")
        if self.question_prior:  # the question-only branch: the head's shape on the question's summary token
            self.prior_dense = keras.layers.Dense(2 * fusion_dim, kernel_initializer=init, name="prior_dense",
                                                  **policy)
            self.prior_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="prior_norm", **policy)
            self.prior_output = keras.layers.Dense(len(answer_vocabulary), kernel_initializer=init,
                                                   name="prior_output", dtype="float32")
        # === Functional model ===
        images = keras.Input(shape=(image_size, image_size, 3), name="images")
        token_ids = keras.Input(shape=(question_length,), dtype="int32", name="token_ids")
        fusion_tokens.check_image_token_stage(image_token_stage, len(encoder.stages))
        self.image_token_stage = image_token_stage
        self._freeze_unused_backbone_parts()
        if image_token_stage is not None:
            self.image_token_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="image_token_norm", **policy)
        if self.image_detail:  # the folded finer cells are raw stage outputs: each through one LayerNorm
            self.image_detail_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="image_detail_norm",
                                                                     **policy)
        stage = len(encoder.stages) - 1 if image_token_stage is None else image_token_stage
        self._own_channels = int(encoder.embed_dim) * 2 ** stage  # the token stage's channels, as the encoder gives
        self._dense_channels = 0
        if self.dense_label_classes:
            self.dense_label_decoder = DenseLabelDecoder(
                self.dense_label_classes, dense_label_channels,
                num_upsamplings=upsampling_steps(encoder.patch_size) if dense_label_upsamplings is None
                else dense_label_upsamplings, name="dense_label_decoder", **policy)
            self._dense_channels = dense_label_sub_cells ** 2 * self.dense_label_classes
        # Each token's "own" channels (the token stage's, then the dense label probabilities), then its finer cells
        self._detail_channels = (self._own_channels + self._dense_channels, int(encoder.embed_dim) * 2 ** (stage - 1))
        scale_maps = self._scale_maps(images, training=None)
        image_map = scale_maps[0] if len(scale_maps) == 1 else fusion_tokens.multi_scale_map(scale_maps)
        self._scale_cells = [int(fusion_tokens.grid_cells(m).shape[1]) for m in scale_maps]
        # The image tokens' width: one scale's cells as they are (with image_detail, C + 4·C/2); several scales'
        # projected back to the token stage's own width C.
        token_channels = int(image_map.shape[-1])
        if len(scale_maps) > 1:  # each scale's cells through its own LayerNorm + projection (same width; with
            # image_detail, back to the token stage's own width)
            channels = token_channels = self._detail_channels[0] if self.image_detail else int(image_map.shape[-1])
            self.image_scale_norms = [
                keras.layers.LayerNormalization(epsilon=1e-5, name=f"image_scale_norm_{s}", **policy)
                for s in self.image_scales]
            self.image_scale_projections = [
                keras.layers.Dense(channels, name=f"image_scale_projection_{s}", **policy) for s in self.image_scales]
        if self.image_summary == "pooled":
            self.image_summary_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="image_summary_norm",
                                                                      **policy)
            self.image_summary_projection = keras.layers.Dense(  # to the width of every other image token
                token_channels, name="image_summary_projection", **policy)
        if self.image_position_embedding:
            self.image_position = keras_hub.layers.PositionEmbedding(
                sequence_length=1 + fusion_tokens.grid_cells(image_map).shape[1], initializer=init,
                name="image_position_embedding", **policy)
        question_mask = self.question_mask(token_ids)
        text_tokens = fusion_tokens.text_tokens(backbone.text_encoder(token_ids)["sequence_output"], question_mask)
        logits = self.answer_logits({"image_map": image_map, "text_tokens": text_tokens, "text_mask": question_mask})
        if self.question_prior:
            logits = self.question_prior_inference(logits, self.question_prior_logits(text_tokens))
        super().__init__(inputs={"images": images, "token_ids": token_ids}, outputs=logits, **kwargs)
        if self.dense_label_classes:  # (again: the decoder's variables are made when it is built, above)
            self.dense_label_decoder.trainable = False

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.setdefault("image_position_embedding", False)  # presets saved before the argument existed
        config.setdefault("image_summary", "mean")  # (likewise)
        config.setdefault("dense_label_classes", 0)  # (likewise)
        if "image_scales" in config:
            config["image_scales"] = tuple(config["image_scales"])
        return super().from_config(config)

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """`FlorenceTask.from_preset`; a `FlorenceFusionPretrainer` preset directory (recipes/pretrain_fusion.py)
        also gives its pretrained fusion stack (`fusion_weights.copy_fusion_weights`: the fusion settings must be
        the pretrainer's), besides its backbone (the preset loader reads only the backbone's weights of another
        Task's preset)."""
        from florence_keras.models import fusion_weights

        pretrained_fusion = fusion_weights.is_fusion_pretrainer_preset(preset)
        if pretrained_fusion:
            from florence_keras.models import florence_fusion_pretrainer  # noqa: F401 (registers the preset's class)
        task = super().from_preset(preset, load_weights=load_weights, **kwargs)
        if pretrained_fusion and load_weights:
            fusion_weights.load_fusion_weights(task, preset)
        return task

    # ------------------------------------------------------------------------------------------------
    # Questions.

    @property
    def image_token_grids(self):
        """Per image scale, the side of its square grid of image tokens (they follow the summary token in this
        order, each row-major)."""
        return [int(round(cells ** 0.5)) for cells in self._scale_cells]

    def question_mask(self, token_ids):
        """int32 `(B, L)`: 1 up to and including the first end-of-text token, 0 after (the padding)."""
        return fusion_tokens.text_mask(token_ids, self.eos_token_id)

    def tokenize_questions(self, questions):
        """Strings `(B,)` (or one) -> int32 `(B, question_length)`: start token, BPE tokens (lower-cased by the
        CLIP tokenizer; cut so the end token fits), end token, end-token padding (`token_packing.tokenize_and_pack`).
        TensorFlow ops (tf.data, serving)."""
        if self.preprocessor is None or self.preprocessor.tokenizer is None:
            raise ValueError("This FlorenceVQA has no tokenizer; pass token ids instead.")
        return token_packing.tokenize_and_pack(self.preprocessor.tokenizer, questions, self.question_length,
                                               "questions")

    def _freeze_unused_backbone_parts(self):
        """The CLIP projections and logit scale (and the final norm when the tokens come from an earlier stage)
        are not on this Task's path: they never train."""
        unused = [self.backbone.text_projection, self.backbone.image_projection, self.backbone.logit_scale_layer]
        if self.image_token_stage is not None:
            unused.append(self.backbone.image_encoder.final_norm)
        for layer in unused:
            layer.trainable = False

    def set_backbone_trainable(self, trainable):
        """Fine-tunes (True) or freezes (False) the pretrained encoders; the parts this Task does not use stay
        frozen. A preset saved from a frozen run stores its backbone as not trainable (Keras keeps `trainable` in
        the config), so a later fine-tuning run must say which it wants."""
        self.backbone.trainable = bool(trainable)
        self._freeze_unused_backbone_parts()

    # ------------------------------------------------------------------------------------------------
    # The two halves: the (frozen) encoders, then the fusion and the head.

    FEATURE_KEYS = ("image_map", "text_tokens", "text_mask")
    IMAGE_SUMMARIES = ("mean", "pooled")

    def encode(self, images, token_ids):
        """The encoders' half, in inference mode: normalised images `(B, S, S, 3)` and token ids
        `(B, question_length)` -> `{"image_map": (B, h, w, C), "text_tokens": (B, L, D), "text_mask": int32 (B, L)}`,
        what `answer_logits` reads. With the backbone frozen these are fixed, so they can be computed once
        (`encode_images` per distinct image, `encode_questions` per distinct question)."""
        return {"image_map": self.encode_images(images), **self.encode_questions(token_ids)}

    def encode_images(self, images, training=False):
        """Normalised images `(B, S, S, 3)` -> `image_map`: `(B, h, w, C)` with one image scale; with several
        (`image_scales`), each scale's map (the images resized bilinearly by that factor) flattened row-major and
        concatenated, `(B, Σ h_s·w_s, C)` (`fusion_tokens.multi_scale_map`). Inference mode by default."""
        maps = self._scale_maps(images, training)
        return maps[0] if len(maps) == 1 else fusion_tokens.multi_scale_map(maps)

    def _scale_maps(self, images, training):
        """One `image_map` per image scale (the images resized bilinearly by that factor)."""
        encoder = self.backbone.image_encoder
        maps = []
        probabilities = None
        for scale in self.image_scales:
            scaled = images
            if scale != 1:
                size = self.image_size * scale
                scaled = ops.image.resize(images, (size, size), interpolation="bilinear")
            features = encoder.forward_features(scaled, training=training)
            image_map = fusion_tokens.image_map(features, self.image_token_stage, self.image_detail)
            if self.dense_label_classes:
                if probabilities is None:  # from the image at scale 1 (encoded here if no scale is 1)
                    pyramid = features["pyramid"] if scale == 1 else None
                    probabilities = ops.stop_gradient(ops.softmax(
                        self.dense_label_logits(images, pyramid=pyramid, training=training), axis=-1))
                image_map = self._with_dense_labels(image_map, probabilities)
            maps.append(image_map)
        return maps

    def dense_label_logits(self, images, pyramid=None, training=False):
        """`dense_label_classes > 0`: normalised images `(B, S, S, 3)` -> float32 per-pixel class logits
        `(B, S, S, K)` of `dense_label_decoder` (from the encoder's pyramid `{"P2": ..., ...}`, computed here
        unless given)."""
        if not self.dense_label_classes:
            raise ValueError("This FlorenceVQA has no dense label decoder (dense_label_classes=0).")
        if pyramid is None:
            pyramid = self.backbone.image_encoder.forward_features(images, training=training)["pyramid"]
        levels = [pyramid[f"P{index + 2}"] for index in range(len(pyramid))]
        return self.dense_label_decoder([images] + levels, training=False)

    def _with_dense_labels(self, image_map, probabilities):
        """`image_map` `(B, h, w, C [+ finer cells])` -> `(B, h, w, C + s²·K [+ finer cells])`: per cell, the
        per-pixel probabilities `(B, S, S, K)` averaged over each of its `s × s` sub-blocks (row-major, the K
        classes innermost), inserted after its own channels."""
        s, classes = self.dense_label_sub_cells, self.dense_label_classes
        height, width = int(image_map.shape[1]), int(image_map.shape[2])
        rows, columns = height * s, width * s
        if self.image_size % rows == 0 and self.image_size % columns == 0:
            pooled = ops.average_pool(probabilities, pool_size=(self.image_size // rows, self.image_size // columns),
                                      strides=(self.image_size // rows, self.image_size // columns))
        else:  # sub-blocks that do not tile the image evenly: an antialiased bilinear resize
            pooled = ops.image.resize(probabilities, (rows, columns), interpolation="bilinear", antialias=True)
        pooled = ops.reshape(pooled, (-1, height, s, width, s, classes))
        pooled = ops.reshape(ops.transpose(pooled, (0, 1, 3, 2, 4, 5)), (-1, height, width, s * s * classes))
        own = self._own_channels
        return ops.concatenate([image_map[..., :own], ops.cast(pooled, image_map.dtype), image_map[..., own:]],
                               axis=-1)

    def encode_questions(self, token_ids, training=False):
        """Token ids `(B, question_length)` -> `{"text_tokens": (B, L, D), "text_mask": int32 (B, L)}` (inference
        mode by default)."""
        text_mask = self.question_mask(token_ids)
        sequence = self.backbone.text_encoder(token_ids, training=training)["sequence_output"]
        return {"text_tokens": fusion_tokens.text_tokens(sequence, text_mask), "text_mask": text_mask}

    def question_prior_logits(self, text_tokens):
        """The question-only branch (`question_prior=True`): `text_tokens` `(B, L, D)` -> float32 logits
        `(B, #answers)` from the question's summary token alone, `Dense -> LayerNorm -> GELU -> Dense` as the head.
        Its input is cut from the gradient: the branch never shapes the encoders."""
        summary = ops.stop_gradient(text_tokens[:, 0])
        hidden = keras.activations.gelu(self.prior_norm(self.prior_dense(summary)), approximate=False)
        return ops.cast(self.prior_output(hidden), "float32")

    def question_prior_inference(self, logits, prior_logits):
        """Inference with `question_prior`: the fusion's logits + log P(the answer's type | question) +
        max(log share of the answer within its type, log question_prior_floor). The question-only branch gives
        both: its sigmoid scores summed over a type's answers, normalised over the types, and each answer's score
        over its type's sum. The type keeps answers of the question's kind; the floor keeps the branch's mild
        preferences (which side objects tend to be on) without ruling out an answer it never saw for this
        question (a hexagon of a colour never seen on one)."""
        types = np.zeros((len(self.answer_types), len(ANSWER_TYPES)), "float32")
        types[np.arange(len(self.answer_types)), [ANSWER_TYPES.index(t) for t in self.answer_types]] = 1.0
        scores = ops.sigmoid(ops.cast(prior_logits, "float32"))
        mass = ops.matmul(scores, types)
        type_probability = mass / ops.maximum(ops.sum(mass, axis=-1, keepdims=True), 1e-12)
        share = scores / ops.maximum(ops.matmul(mass, types.T), 1e-12)
        floor = np.log(self.question_prior_floor) if self.question_prior_floor > 0 else -np.inf
        within = ops.maximum(ops.log(share + 1e-12), floor)
        return ops.cast(logits, "float32") + ops.matmul(ops.log(type_probability + 1e-6), types.T) + within

    def answer_logits(self, features, training=None, return_attention=False):
        """The fusion and head half: `encode`'s dict -> answer logits `(B, #answers)` (with `return_attention`,
        `(logits, the fusion's text-to-image attention per layer)`, see `FusionEncoder`)."""
        image_map = features["image_map"]
        if self.image_detail:  # [own channels C | 4 finer cells of C/2 each]: normalise each finer cell
            own = self._detail_channels[0]
            finer = image_map[..., own:]
            cells = tuple(finer.shape[1:-1])  # static: (h, w) or (N,)
            finer = ops.reshape(finer, (-1, *cells, 4, self._detail_channels[1]))
            finer = ops.reshape(self.image_detail_norm(finer), (-1, *cells, 4 * self._detail_channels[1]))
            image_map = ops.concatenate([image_map[..., :own], finer], axis=-1)
        if self.image_token_stage is not None:
            image_map = self.image_token_norm(image_map)
        cells = fusion_tokens.grid_cells(image_map)
        summary = None
        if self.image_summary == "pooled":  # the first scale's token-stage channels, averaged over its cells
            own = self._detail_channels[0]  # (with image_detail, the folded finer cells follow these channels)
            pooled = ops.mean(cells[:, :self._scale_cells[0], :own], axis=1, keepdims=True)
            summary = self.image_summary_projection(self.image_summary_norm(pooled))
        if len(self.image_scales) > 1:
            bounds = np.cumsum([0] + self._scale_cells)
            cells = ops.concatenate([
                projection(norm(cells[:, start:end]))
                for start, end, norm, projection in zip(bounds[:-1], bounds[1:], self.image_scale_norms,
                                                        self.image_scale_projections)], axis=1)
        image_tokens = fusion_tokens.grid_tokens(cells)
        if summary is not None:
            image_tokens = ops.concatenate([ops.cast(summary, image_tokens.dtype), image_tokens[:, 1:]], axis=1)
        if self.image_position_embedding:
            image_tokens = image_tokens + self.image_position(image_tokens)
        text_tokens = self.text_summary_drop(features["text_tokens"], training=training)
        fused = self.fusion(text_tokens, image_tokens, text_mask=features["text_mask"], training=training,
                            return_attention=return_attention)
        hidden = keras.activations.gelu(self.head_norm(self.head_dense(fused["pooled_output"])), approximate=False)
        logits = self.head_output(hidden)
        return (logits, fused["text_to_image_attention"]) if return_attention else logits

    # ------------------------------------------------------------------------------------------------
    # Training.

    def default_loss(self):
        """Binary cross-entropy with logits (per question: mean over the answers; `compute_loss` multiplies by the
        number of answers, METER's `BCE(mean) × #answers`)."""
        return keras.losses.BinaryCrossentropy(from_logits=True)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss of the answer logits against soft targets `y` `(B, #answers)`, × #answers. With
        `question_prior` the product of experts of `replica_loss`, computed from `x` (`y_pred` holds the
        inference logits)."""
        if y is None:
            raise ValueError("The VQA loss needs soft answer targets `y`.")
        loss_fn, y = self.task_loss_or_raise(), ops.cast(y, "float32")
        if self.question_prior and x is not None:
            logits, prior = self._fusion_and_question_logits(x, training)
            loss = loss_fn(y, logits + ops.stop_gradient(prior), sample_weight) + loss_fn(y, prior, sample_weight)
        else:
            loss = loss_fn(y, ops.cast(y_pred, "float32"), sample_weight)
        return self.with_layer_losses(loss * len(self.answer_vocabulary))

    def _features_of(self, x, training):
        """`answer_logits`' input from a batch of images + token ids (encoded here) or of cached features."""
        if "images" in x and "token_ids" in x:
            return {"image_map": self.encode_images(x["images"], training=training),
                    **self.encode_questions(x["token_ids"], training=training)}
        return {k: x[k] for k in self.FEATURE_KEYS}

    def _fusion_and_question_logits(self, x, training, return_attention=False):
        """`question_prior` training: float32 `(fusion logits, question-only logits)` of images + token ids or of
        cached features (and the fusion's text-to-image attention with `return_attention`)."""
        features = self._features_of(x, training)
        logits, attention = self._logits_and_attention(features, training, return_attention)
        prior = self.question_prior_logits(features["text_tokens"])
        return (logits, prior, attention) if return_attention else (logits, prior)

    def _logits_and_attention(self, features, training, return_attention):
        if return_attention:
            logits, attention = self.answer_logits(features, training=training, return_attention=True)
        else:
            logits, attention = self.answer_logits(features, training=training), None
        return ops.cast(logits, "float32"), attention

    @staticmethod
    def grounding_loss(attention, positions, targets):
        """The attention target of `grounding_weight`, per question `(B,)`: for each named position `k`
        (`positions[b, k]` in `[0, Lt)`; others are ignored), the cross-entropy `-Σ_l targets[b, k, l] ·
        log(a[b, positions[b, k], l] + 1e-6)` of the text-to-image attention `a` (mean over heads), averaged over
        the layers of `attention` (a list of `(B, H, Lt, Li)`) and summed over k."""
        positions = ops.cast(positions, "int32")
        length = int(attention[0].shape[2])
        valid = ops.cast(ops.logical_and(positions >= 0, positions < length), "float32")
        pick = ops.one_hot(ops.clip(positions, 0, length - 1), length, dtype="float32")  # (B, K, Lt)
        targets = ops.cast(targets, "float32")
        total = 0.0
        for weights in attention:
            rows = ops.einsum("bkq,bql->bkl", pick, ops.mean(ops.cast(weights, "float32"), axis=1))
            total = total - ops.sum(targets * ops.log(rows + 1e-6), axis=-1)
        return ops.sum(total / len(attention) * valid, axis=-1)

    def preprocess_samples(self, x, y=None, sample_weight=None):
        """`fit` / `evaluate` take `{"images", "token_ids"}` and soft targets: passed unchanged."""
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    def check_training_batch(self, element_spec, image_size):
        """Raises a clear ValueError when the training batches don't fit this Task: `{"images", "token_ids",
        "answer_scores"}` or, on cached features, `{"image_map", "text_tokens", "text_mask", "answer_scores"}`."""
        needed = {"images", "token_ids", "answer_scores"}
        cached = {*self.FEATURE_KEYS, "answer_scores"}
        if not isinstance(element_spec, dict) or (needed - set(element_spec) and cached - set(element_spec)):
            raise ValueError(f"VQA batches are {sorted(needed)} or, on cached features, {sorted(cached)} "
                             f"(+ bookkeeping). Received: {element_spec}")
        scores = element_spec["answer_scores"]
        if needed <= set(element_spec):
            images, ids = element_spec["images"], element_spec["token_ids"]
            if images.shape.rank != 4 or tuple(images.shape[1:3]) != (image_size, image_size):
                raise ValueError(f"'images' must be (B, {image_size}, {image_size}, 3). Received: {images}")
            if ids.dtype != tf.int32 or ids.shape.rank != 2 or ids.shape[1] != self.question_length:
                raise ValueError(f"'token_ids' must be int32 (B, {self.question_length}). Received: {ids}")
        else:
            self._check_feature_spec(element_spec)
        if scores.shape.rank != 2 or scores.shape[1] != len(self.answer_vocabulary):
            raise ValueError(f"'answer_scores' must be (B, {len(self.answer_vocabulary)}). Received: {scores}")
        if "grounding_positions" in element_spec or "grounding_targets" in element_spec:
            self._check_grounding_spec(element_spec)

    def _check_grounding_spec(self, element_spec):
        """Attention-target batches: `grounding_positions` int `(B, K)` and `grounding_targets` `(B, K, Li)`, Li
        this Task's image tokens (1 + the cells of every scale)."""
        positions, targets = element_spec.get("grounding_positions"), element_spec.get("grounding_targets")
        tokens = 1 + sum(self._scale_cells)
        if positions is None or targets is None or positions.shape.rank != 2 or not positions.dtype.is_integer \
                or targets.shape.rank != 3 or targets.shape[2] != tokens or targets.shape[1] != positions.shape[1]:
            raise ValueError(f"Attention targets are 'grounding_positions' int (B, K) and 'grounding_targets' "
                             f"(B, K, {tokens}) (this Task's image tokens). Received: {positions}, {targets}")

    def _check_feature_spec(self, element_spec):
        """Cached-feature batches must be what `encode` gives for this Task."""
        image_map, text, mask = (element_spec[k] for k in self.FEATURE_KEYS)
        expected = self.encode_images(keras.KerasTensor((1, self.image_size, self.image_size, 3))).shape[1:]
        if tuple(image_map.shape[1:]) != tuple(expected):
            raise ValueError(f"'image_map' must be (B, {', '.join(map(str, expected))}) (`encode` at "
                             f"{self.image_size}px). Received: {image_map}")
        if text.shape.rank != 3 or text.shape[1] != self.question_length:
            raise ValueError(f"'text_tokens' must be (B, {self.question_length}, D). Received: {text}")
        if mask.shape.rank != 2 or mask.shape[1] != self.question_length:
            raise ValueError(f"'text_mask' must be (B, {self.question_length}). Received: {mask}")

    def replica_loss(self, x, y=None, replica_context=None, training=True):
        """One replica's share of the loss on `x = {"images", "token_ids", "answer_scores", ...}` (or cached
        features: `{"image_map", "text_tokens", "text_mask", "answer_scores", ...}`, see `encode`): Σ over its
        questions of the per-question loss / the global batch size (the replicas' losses sum to the global mean).
        With `grounding_weight` > 0, batches carrying `grounding_positions` / `grounding_targets` add the
        attention target (`grounding_loss`). `y` (the trainer's `labels`) is not used."""
        keys = set(x) if isinstance(x, dict) else set()
        if "answer_scores" not in keys or ({"images", "token_ids"} - keys and set(self.FEATURE_KEYS) - keys):
            raise ValueError("VQA batches are {'images', 'token_ids', 'answer_scores', ...} or {'image_map', "
                             "'text_tokens', 'text_mask', 'answer_scores', ...}. Received: "
                             f"{sorted(x) if isinstance(x, dict) else type(x).__name__}")
        loss_fn = getattr(self, "task_loss", None) or self._training_loss()
        targets = ops.cast(x["answer_scores"], "float32")
        grounded = self.grounding_weight > 0 and {"grounding_positions", "grounding_targets"} <= keys
        attention = None
        if not self.question_prior:
            if grounded:
                logits, attention = self._logits_and_attention(self._features_of(x, training), training, True)
            elif {"images", "token_ids"} <= keys:
                logits = self({"images": x["images"], "token_ids": x["token_ids"]}, training=training)
            else:
                logits = self.answer_logits({k: x[k] for k in self.FEATURE_KEYS}, training=training)
            per_question = loss_fn.call(targets, ops.cast(logits, "float32"))
        else:  # a product of experts: the fusion learns what the question alone does not tell
            if grounded:
                logits, prior, attention = self._fusion_and_question_logits(x, training, return_attention=True)
            else:
                logits, prior = self._fusion_and_question_logits(x, training)
            per_question = (loss_fn.call(targets, logits + ops.stop_gradient(prior))
                            + loss_fn.call(targets, prior))
        per_question = per_question * len(self.answer_vocabulary)
        if attention is not None:  # the named objects' text positions pulled to their image tokens
            per_question = per_question + self.grounding_weight * self.grounding_loss(
                attention, x["grounding_positions"], x["grounding_targets"])
        replicas = 1 if replica_context is None else replica_context.num_replicas_in_sync
        global_batch = ops.cast(ops.shape(per_question)[0] * replicas, "float32")
        return self.with_layer_losses(ops.sum(per_question) / global_batch)

    def _training_loss(self):
        if getattr(self, "_default_loss", None) is None:
            self._default_loss = self.default_loss()
        return self._default_loss

    # ------------------------------------------------------------------------------------------------
    # Inference on raw images and strings.

    def image_inputs(self, images):
        """Raw images `(B, H, W, C)` in `[0, 255]` -> normalised `(B, S, S, 3)`: whole-image bilinear (antialiased)
        resize, then the preset converter's normalisation (used by `predict` and serving)."""
        if self.preprocessor is None or self.preprocessor.image_converter is None:
            raise ValueError("This FlorenceVQA has no image converter; call it on normalised images instead.")
        images = ops.cast(ops.convert_to_tensor(images), "float32")
        if tuple(images.shape[1:3]) != (self.image_size, self.image_size):
            images = ops.image.resize(images, (self.image_size, self.image_size), interpolation="bilinear",
                                      antialias=True)
        return ops.cast(self.preprocessor.image_converter.normalizer()(images), "float32")

    def predict(self, x, questions=None, batch_size=32, verbose=None, **kwargs):
        """Answers to questions about images.

        Args:
            x: raw images in `[0, 255]`: `(B, H, W, C)`, one `(H, W, C)`, or a list of `(H, W, C)` of any sizes;
                or a dict `{"images", "questions"}`.
            questions: a string or a list of B strings (one per image).
            batch_size: questions per forward pass.
            verbose, **kwargs: ignored (Keras's `predict` arguments).

        Returns:
            dict: `answers` (list of str; one str for one image and one question), `scores` float32 numpy
            (sigmoid of the chosen answer's logit, in (0, 1)), `indices` int numpy (vocabulary rows).
        """
        del verbose, kwargs
        if isinstance(x, dict):
            x, questions = x.get("images"), x.get("questions", questions)
        if questions is None:
            raise ValueError("`predict` needs `questions` (one string per image).")
        single = isinstance(questions, str)
        questions = [questions] if single else list(questions)
        if isinstance(x, (list, tuple)):
            images = [np.asarray(image) for image in x]
        else:
            x = np.asarray(x)
            images = [x] if x.ndim == 3 else list(x)
        if len(images) != len(questions):
            raise ValueError(f"One question per image: {len(images)} images, {len(questions)} questions.")
        for image in images:
            if image.ndim != 3 or min(image.shape[:2]) < 1:
                raise ValueError(f"Each image must be (H, W, C). Received shape: {image.shape}")
        logits = []
        for start in range(0, len(images), batch_size):
            batch = [self.image_inputs(image[None])[0] for image in images[start:start + batch_size]]
            token_ids = self.tokenize_questions(tf.constant(questions[start:start + batch_size]))
            logits.append(np.asarray(self({"images": ops.stack(batch), "token_ids": token_ids}, training=False)))
        logits = np.concatenate(logits, axis=0)
        indices = logits.argmax(axis=-1)
        scores = (1.0 / (1.0 + np.exp(-logits[np.arange(len(indices)), indices]))).astype(np.float32)
        answers = [self.answer_vocabulary[i] for i in indices]
        if single and len(answers) == 1:
            return {"answers": answers[0], "scores": scores[0], "indices": indices[0]}
        return {"answers": answers, "scores": scores, "indices": indices}

    def get_config(self):
        config = super().get_config()
        config.update({"answer_vocabulary": list(self.answer_vocabulary), "image_size": self.image_size,
                       "question_length": self.question_length, "fusion_dim": self.fusion_dim,
                       "fusion_layers": self.fusion_layers, "fusion_heads": self.fusion_heads,
                       "fusion_intermediate_dim": self.fusion_intermediate_dim, "dropout": self.dropout,
                       "image_token_stage": self.image_token_stage,
                       "image_position_embedding": self.image_position_embedding,
                       "image_scales": list(self.image_scales), "image_detail": self.image_detail,
                       "image_summary": self.image_summary, "text_summary_dropout": self.text_summary_dropout,
                       "question_prior": self.question_prior, "answer_types": list(self.answer_types),
                       "question_prior_floor": self.question_prior_floor,
                       "grounding_weight": self.grounding_weight,
                       "dense_label_classes": self.dense_label_classes,
                       "dense_label_channels": self.dense_label_channels,
                       "dense_label_sub_cells": self.dense_label_sub_cells,
                       "dense_label_upsamplings": self.dense_label_upsamplings})
        return config


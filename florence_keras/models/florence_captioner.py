"""FlorenceCaptioner: image captioning with a transformer decoder over CoSwin image tokens, as a keras-hub Task."""

import keras
import numpy as np
from keras import ops

from florence_keras.layers.caption_decoder import CaptionDecoder
from florence_keras.models.caption_vocabulary import END_ID
from florence_keras.models.caption_vocabulary import PAD_ID
from florence_keras.models.caption_vocabulary import START_ID
from florence_keras.models.caption_vocabulary import UNK_ID
from florence_keras.models.caption_vocabulary import CaptionVocabulary
from florence_keras.models.florence_backbone import FlorenceBackbone
from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
from florence_keras.models.florence_task import FlorenceTask

_NEG = -1e9
# Which encoder outputs the decoder attends to: "final", the final feature map ((S/32)² tokens); "p4_final", the
# stage before it ((S/16)² tokens), each concatenated with its final-map parent's features (finer places).
IMAGE_TOKEN_SOURCES = ("final", "p4_final")


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceCaptioner(FlorenceTask):
    """Image captioning (SPEC §3, the modality axis; issue #14): a `CaptionDecoder` attending to CoSwin image tokens.

    The image encoder's last-stage tokens (see `image_token_source`) are projected and attended to by a causal transformer decoder (`CaptionDecoderLayer`: self-attention →
    cross-attention → FFN, pre-LN) over a word vocabulary built from the training captions (`CaptionVocabulary`,
    saved in the config). The text tower, projections and logit scale are not used and are frozen.

    Calling the Task on `{"images": normalised (B, S, S, 3), "token_ids": int (B, T)}` returns float32 logits
    `(B, T, V)`: position t predicts token t + 1 (teacher forcing). `generate(images)` / `predict(images)` take raw
    images (`[0, 255]`, any size: whole-image resize to S × S, then the preset's normalisation) and return caption
    strings, decoded greedily (`num_beams=1`, `keras_hub.samplers.GreedySampler`) or by beam search
    (`keras_hub.samplers.BeamSampler`, then the beams ranked by log-probability / ((5 + length) / 6) ** α, GNMT's
    length penalty, α = `length_penalty`). A finished caption only emits `<pad>` (probability 1), so its score stays
    fixed while the others go on; `<pad>`, `<start>` and `<unk>` are never generated.

    Training: the loss is the cross-entropy of each next token, `<pad>` targets masked, averaged per caption; the
    training system calls `replica_loss` with batches `{"images", "token_ids", ...}` (ids from
    `CaptionVocabulary.encode`: `<start>` words `<end>` `<pad>`...).

    Args:
        backbone: a `FlorenceBackbone` (its `image_encoder` a `CoSwinBackbone`).
        preprocessor: a `FlorenceCLIPPreprocessor` (its image converter normalises). Optional.
        vocabulary: list of str, the caption vocabulary (`caption_vocabulary.build_vocabulary`).
        image_size: int, the square input size; defaults to the image encoder's (a multiple of 32).
        max_length: int, the longest id row (`<start>` and `<end>` included). Defaults to 24.
        hidden_dim, num_layers, num_heads, intermediate_dim, dropout: the decoder's size. Defaults 128, 2, 4, 512,
            0.1.
        train_backbone: bool, fine-tune the image encoder (True) or keep it frozen.
        num_beams: int, the default beam width of `generate` (1 = greedy).
        length_penalty: float α of beam search's ranking (0 = plain log-probability).
        image_token_source: `"p4_final"` (default: the stage before last, `(S/16)²` tokens, each concatenated with
            its parent final-map token) or `"final"` (the final feature map only, `(S/32)²` tokens).
        **kwargs: `keras.Model` arguments.

    Example:
    >>> captioner = FlorenceCaptioner.from_preset("/tmp/captioning/preset")   # doctest: +SKIP
    >>> captioner.generate(images)   # ['a photo of a small red circle on the left', ...]   # doctest: +SKIP
    """

    backbone_cls = FlorenceBackbone
    preprocessor_cls = FlorenceCLIPPreprocessor
    training_batch_spec = {"images": ("float", 4), "token_ids": ("int32", 2)}

    def __init__(self, backbone, preprocessor=None, vocabulary=None, image_size=None, max_length=24, hidden_dim=128,
                 num_layers=2, num_heads=4, intermediate_dim=512, dropout=0.1, train_backbone=True, num_beams=1,
                 length_penalty=0.0, image_token_source="p4_final", **kwargs):
        encoder = backbone.image_encoder
        if not hasattr(encoder, "forward_features"):
            raise ValueError(f"The captioner reads CoSwin image tokens; this backbone's image encoder is a "
                             f"{type(encoder).__name__}.")
        if vocabulary is None:
            raise ValueError("`vocabulary` is required: build it from the training captions "
                             "(`florence_keras.models.caption_vocabulary.build_vocabulary`).")
        image_size = int(encoder.image_shape[0]) if image_size is None else image_size
        stride = int(encoder.patch_size) * 2 ** (len(encoder.depths) - 1)
        if not isinstance(image_size, int) or image_size < stride or image_size % stride:
            raise ValueError(f"`image_size` must be a positive multiple of the encoder's stride {stride}. "
                             f"Received: image_size={image_size!r}")
        if image_token_source not in IMAGE_TOKEN_SOURCES:
            raise ValueError(f"`image_token_source` must be one of {IMAGE_TOKEN_SOURCES}. "
                             f"Received: image_token_source={image_token_source!r}")
        if num_beams < 1 or max_length < 3:
            raise ValueError(f"`num_beams` must be >= 1 and `max_length` >= 3. Received: num_beams={num_beams}, "
                             f"max_length={max_length}")
        # === Config ===
        self.vocabulary = list(vocabulary)
        self.caption_vocabulary = CaptionVocabulary(self.vocabulary)
        self.image_size = image_size
        self.max_length = int(max_length)
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.train_backbone = bool(train_backbone)
        self.num_beams = int(num_beams)
        self.length_penalty = float(length_penalty)
        self.image_token_source = image_token_source
        grid = image_size // stride * (2 if image_token_source == "p4_final" else 1)
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        for unused in (backbone.text_encoder, backbone.text_projection, backbone.image_projection,
                       backbone.logit_scale_layer):
            unused.trainable = False
        encoder.trainable = self.train_backbone
        self.decoder = CaptionDecoder(
            len(self.vocabulary), self.max_length, grid ** 2, hidden_dim=hidden_dim,
            num_layers=num_layers, num_heads=num_heads, intermediate_dim=intermediate_dim, dropout=dropout,
            dtype=backbone.dtype_policy, name="caption_decoder")
        # === Functional model ===
        images = keras.Input(shape=(image_size, image_size, 3), name="images")
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        image_tokens = self._image_tokens_of(images)
        logits = self.decoder(token_ids, image_tokens, padding_mask=ops.not_equal(token_ids, PAD_ID))
        super().__init__(inputs={"images": images, "token_ids": token_ids}, outputs=logits, **kwargs)
        self._generate_functions = {}

    def _image_tokens_of(self, images, training=None):
        encoder = self.backbone.image_encoder
        outputs = encoder.forward_features(images, training=training)
        features = outputs["feature_map"]
        if self.image_token_source == "p4_final":  # the stage before last, each token with its final-map parent
            finer = outputs["pyramid"][f"P{len(encoder.depths)}"]
            features = ops.concatenate(
                [finer, ops.repeat(ops.repeat(features, 2, axis=1), 2, axis=2)], axis=-1)
        return ops.reshape(features, (-1, features.shape[1] * features.shape[2], features.shape[3]))

    def image_tokens(self, images, training=False):
        """Normalised images `(B, S, S, 3)` -> image tokens `(B, N, C)` (the encoder's final feature map)."""
        return self._image_tokens_of(images, training=training)

    # ------------------------------------------------------------------------------------------------
    # Training.

    def default_loss(self):
        """Token cross-entropy from logits (per token; `caption_loss` masks `<pad>` targets)."""
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

    def caption_loss(self, token_ids, logits, loss_fn=None):
        """Per-caption mean next-token cross-entropy `(B,)`: logits at t against ids at t + 1, `<pad>` masked."""
        loss_fn = loss_fn or self._training_loss()
        targets = token_ids[:, 1:]
        per_token = loss_fn(targets, ops.cast(logits[:, :-1], "float32"))
        mask = ops.cast(ops.not_equal(targets, PAD_ID), "float32")
        return ops.sum(per_token * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """`fit`: `x = {"images", "token_ids"}`; the mean caption loss (`y` unused)."""
        del y, sample_weight, training
        per_caption = self.caption_loss(ops.convert_to_tensor(x["token_ids"]), y_pred, self.task_loss_or_raise())
        return self.with_layer_losses(ops.mean(per_caption))

    def preprocess_samples(self, x, y=None, sample_weight=None):
        """`fit` / `evaluate` take normalised images and token ids: passed unchanged."""
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    def replica_loss(self, x, y=None, replica_context=None, training=True):
        """One replica's share of the loss on `x = {"images", "token_ids", ...}`: Σ of the local per-caption losses
        / global batch size, so the replicas' losses sum to the global mean. `y` is not used."""
        if not isinstance(x, dict) or "images" not in x or "token_ids" not in x:
            raise ValueError("Captioning batches are {'images', 'token_ids', ...}. Received: "
                             f"{sorted(x) if isinstance(x, dict) else type(x).__name__}")
        token_ids = ops.cast(x["token_ids"], "int32")
        images = ops.convert_to_tensor(x["images"])
        logits = self({"images": images, "token_ids": token_ids}, training=training)
        loss_fn = getattr(self, "task_loss", None) or self._training_loss()
        per_caption = self.caption_loss(token_ids, logits, loss_fn)
        replicas = 1 if replica_context is None else replica_context.num_replicas_in_sync
        global_batch = ops.cast(ops.shape(per_caption)[0] * replicas, "float32")
        return self.with_layer_losses(ops.sum(per_caption) / global_batch)

    def _training_loss(self):
        if getattr(self, "_default_loss", None) is None:
            self._default_loss = self.default_loss()
        return self._default_loss

    # ------------------------------------------------------------------------------------------------
    # Generation.

    def caption_inputs(self, images):
        """Raw images `(B, H, W, C)` in `[0, 255]` -> normalised `(B, S, S, 3)` (whole-image bilinear resize,
        antialiased, then the preset converter's normalisation). Used by `generate` and serving."""
        if self.preprocessor is None or self.preprocessor.image_converter is None:
            raise ValueError("This captioner has no image converter; call `generate_ids` on normalised images.")
        images = ops.cast(ops.convert_to_tensor(images), "float32")
        resized = ops.image.resize(images, (self.image_size, self.image_size), interpolation="bilinear",
                                   antialias=True)
        return ops.cast(self.preprocessor.image_converter.normalizer()(resized), "float32")

    def _next_fn(self, image_states):
        """The samplers' `next(prompt, cache, index)`: logits of token `index` from the whole prompt (no cache)."""
        vocabulary_size = len(self.vocabulary)
        banned = ops.convert_to_tensor(np.isin(np.arange(vocabulary_size), [PAD_ID, START_ID, UNK_ID]))
        only_pad = ops.convert_to_tensor(np.where(np.arange(vocabulary_size) == PAD_ID, 0.0, _NEG), "float32")

        def next_fn(prompt, cache, index):
            logits = self.decoder.decode(prompt, image_states, padding_mask=None, training=False)
            logits = ops.take(logits, index - 1, axis=1)
            positions = ops.arange(ops.shape(prompt)[1])[None]
            finished = ops.any(ops.logical_and(ops.equal(prompt, END_ID), positions < index), axis=1)
            logits = ops.where(banned[None], _NEG, logits)
            logits = ops.where(finished[:, None], only_pad[None], logits)
            return logits, None, cache

        return next_fn

    def generate_ids(self, images, num_beams=None, length_penalty=None):
        """Normalised images `(B, S, S, 3)` -> int32 ids `(B, max_length)` (`<start>` first), as keras ops (also
        traced by the `caption` serving signature)."""
        import keras_hub

        num_beams = self.num_beams if num_beams is None else int(num_beams)
        alpha = self.length_penalty if length_penalty is None else float(length_penalty)
        image_states = self.decoder.project_image_tokens(self.image_tokens(images, training=False))
        batch = ops.shape(image_states)[0]
        prompt = ops.concatenate([ops.full((batch, 1), START_ID, "int32"),
                                  ops.full((batch, self.max_length - 1), PAD_ID, "int32")], axis=1)
        if num_beams == 1:
            return keras_hub.samplers.GreedySampler()(self._next_fn(image_states), prompt, index=1,
                                                      stop_token_ids=[END_ID])
        beams, log_probs = keras_hub.samplers.BeamSampler(num_beams=num_beams, return_all_beams=True)(
            self._next_fn(ops.repeat(image_states, num_beams, axis=0)), prompt, index=1, stop_token_ids=[END_ID])
        if alpha:
            is_end = ops.equal(beams[:, :, 1:], END_ID)
            ended = ops.any(is_end, axis=-1)
            first_end = ops.argmax(ops.cast(is_end, "int32"), axis=-1) + 1  # tokens after <start>, <end> included
            lengths = ops.cast(ops.where(ended, first_end, self.max_length - 1), "float32")
            log_probs = log_probs / ops.power((5.0 + lengths) / 6.0, alpha)
        best = ops.argmax(log_probs, axis=-1)
        return ops.take_along_axis(beams, best[:, None, None], axis=1)[:, 0]

    def _generate_function(self, num_beams, length_penalty):
        key = (num_beams, length_penalty)
        if key not in self._generate_functions:
            def run(images):
                return self.generate_ids(images, num_beams=num_beams, length_penalty=length_penalty)

            if keras.config.backend() == "tensorflow":
                import tensorflow as tf

                run = tf.function(run, reduce_retracing=True)
            self._generate_functions[key] = run
        return self._generate_functions[key]

    def generate(self, images, num_beams=None, length_penalty=None, batch_size=32):
        """Captions of raw images.

        Args:
            images: `(B, H, W, C)` in `[0, 255]`, one `(H, W, C)`, or a list of `(H, W, C)` of any sizes.
            num_beams: beam width (1: greedy); default the Task's `num_beams`.
            length_penalty: α of the beam ranking; default the Task's `length_penalty`.
            batch_size: images per generation batch.

        Returns:
            a list of str (one str for one `(H, W, C)` image).
        """
        num_beams = self.num_beams if num_beams is None else int(num_beams)
        alpha = self.length_penalty if length_penalty is None else float(length_penalty)
        if isinstance(images, (list, tuple)):
            if not images:
                raise ValueError("`images` is an empty list.")
            return [self.generate(np.asarray(image), num_beams, alpha) for image in images]
        images = np.asarray(images)
        if images.ndim == 3:
            return self.generate(images[None], num_beams, alpha, batch_size)[0]
        if images.ndim != 4 or images.shape[0] == 0 or min(images.shape[1:3]) < 1:
            raise ValueError(f"`images` must be (H, W, C) or (B, H, W, C). Received shape: {images.shape}")
        run = self._generate_function(num_beams, alpha)
        captions = []
        for start in range(0, images.shape[0], batch_size):
            ids = run(self.caption_inputs(images[start:start + batch_size]))
            captions.extend(self.caption_vocabulary.decode(np.asarray(ids)))
        return captions

    def predict(self, x, batch_size=32, verbose=None, **kwargs):
        """`generate(x)` (greedy unless the Task's `num_beams` > 1): caption strings of raw images."""
        del verbose, kwargs
        return self.generate(x, batch_size=batch_size)

    def get_config(self):
        config = super().get_config()
        config.update({name: getattr(self, name) for name in (
            "vocabulary", "image_size", "max_length", "hidden_dim", "num_layers", "num_heads", "intermediate_dim",
            "dropout", "train_backbone", "num_beams", "length_penalty", "image_token_source")})
        return config

"""FlorenceVideoClassifier: action recognition (and video-text contrast) on an inflated Video CoSwin."""

import keras
import numpy as np
from keras import ops

from florence_keras.layers.motion_correlation import MotionCorrelation
from florence_keras.losses.unicl_loss import unicl_loss
from florence_keras.models.florence_backbone import FlorenceBackbone
from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
from florence_keras.models.florence_task import FlorenceTask
from florence_keras.models.video_coswin_backbone import VideoCoSwinBackbone

OBJECTIVES = ("classify", "unicl")


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceVideoClassifier(FlorenceTask):
    """Clip classification on a Florence backbone whose image encoder is a `VideoCoSwinBackbone` (SPEC §3, time).

    The backbone keeps its text tower and projections, so the same Task embeds clips into the text space
    (`encode_videos`, the `encode_video` signature) and can be fine-tuned contrastively on video-text pairs
    (`objective="unicl"`) as well as with labels (`objective="classify"`: softmax cross-entropy with label
    smoothing on a linear head over the pooled video feature and, with `motion_radius > 0`, pooled motion features).

    Motion features (`motion_radius`): the pooled video feature of an inflated image model cannot tell the
    direction of motion (it is symmetric under time reversal at initialisation, and a linear feature averaged over
    a translating pattern does not depend on the velocity), and in a short fine-tune it does not learn to
    (docs/video.md). The head therefore also reads `MotionCorrelation` of the stem's tokens: each token's
    correlation with its neighbours (up to `motion_radius` tokens away) at the next time step, pooled into a
    soft-argmax displacement and a displacement histogram, weighted by how much each token changed. Contrastive
    embeddings (`encode_videos`, `objective="unicl"`) use the pooled video feature only.

    Calling the Task on normalised clips `(B, T, S, S, 3)` returns class logits `(B, num_classes)`.
    `video_inputs` turns raw uint8 clips into normalised ones with the preset's image converter (training,
    `predict`, serving alike).

    Training batches (the toolkit's trainer): `{"videos": uint8 (B, T, S, S, 3), "labels": int64 (B,)}` for
    `classify`; `{"videos", "token_ids": int32 (B, L), "labels": int64 keys (B,)}` for `unicl` (equal keys are
    positives).

    Args:
        backbone: a `FlorenceBackbone` with a `VideoCoSwinBackbone` image encoder.
        preprocessor: a `FlorenceCLIPPreprocessor` (tokenizer + image converter). Optional.
        class_names: list of str, one per class (>= 2).
        label_smoothing: float in [0, 1). Defaults to `0.1`.
        dropout: float, dropout before the head. Defaults to `0.0`.
        objective: `"classify"` or `"unicl"`.
        motion_radius: int >= 0, the largest displacement (in stem tokens) of the motion features; `0` turns them
            off (the head reads the pooled video feature alone). Defaults to `2`.
        **kwargs: `keras.Model` arguments.

    Example:
    >>> task = FlorenceVideoClassifier.from_image_preset(
    ...     "florence_mini_builtin", class_names=["left", "right"], num_frames=4)  # doctest: +SKIP
    """

    backbone_cls = FlorenceBackbone
    preprocessor_cls = FlorenceCLIPPreprocessor

    def __init__(self, backbone, preprocessor=None, class_names=("class_0", "class_1"), label_smoothing=0.1,
                 dropout=0.0, objective="classify", motion_radius=2, **kwargs):
        encoder = backbone.image_encoder
        if not isinstance(encoder, VideoCoSwinBackbone):
            raise ValueError(f"The backbone's image encoder must be a VideoCoSwinBackbone (inflate an image preset "
                             f"with `from_image_preset`). Received: {type(encoder).__name__}")
        class_names = [str(c) for c in class_names]
        if len(class_names) < 2:
            raise ValueError(f"`class_names` needs >= 2 classes. Received: {class_names}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1). Received: label_smoothing={label_smoothing}")
        if objective not in OBJECTIVES:
            raise ValueError(f"`objective` must be one of {OBJECTIVES}. Received: objective={objective!r}")
        if not isinstance(motion_radius, int) or motion_radius < 0:
            raise ValueError(f"`motion_radius` must be an int >= 0. Received: motion_radius={motion_radius!r}")
        # === Config === (before the functional model: keras-hub's Task compiles in its constructor)
        self.class_names = class_names
        self.label_smoothing = float(label_smoothing)
        self.dropout = float(dropout)
        self.objective = objective
        self.motion_radius = motion_radius
        self.training_batch_spec = {"videos": ("uint8", 5), "labels": ("int64", 1)}
        if objective == "unicl":
            self.training_batch_spec["token_ids"] = ("int32", 2)
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.motion = (MotionCorrelation(motion_radius, dtype=backbone.dtype_policy, name="motion")
                       if motion_radius else None)
        self.head_dropout = keras.layers.Dropout(dropout, dtype=backbone.dtype_policy, name="head_dropout")
        self.head = keras.layers.Dense(len(class_names), dtype=backbone.dtype_policy, name="head")
        # === Functional model ===
        videos = keras.Input(shape=tuple(encoder.video_shape), name="videos")
        pooled = encoder(videos)["pooled_output"]
        logits = self.head(self.head_dropout(self._head_features(pooled, videos)))
        super().__init__(inputs=videos, outputs=logits, **kwargs)

    def _head_features(self, pooled, normalized_videos):
        """What the head reads: the pooled video feature, and the motion features of the stem's tokens."""
        if self.motion is None:
            return pooled
        motion = self.motion(self.backbone.image_encoder.stem(normalized_videos))
        return ops.concatenate([pooled, ops.cast(motion, pooled.dtype)], axis=-1)

    @property
    def num_frames(self):
        return int(self.backbone.image_encoder.video_shape[0])

    @property
    def image_size(self):
        return int(self.backbone.image_encoder.video_shape[1])

    # ------------------------------------------------------------------------------------------------
    # Building from an image preset.

    @classmethod
    def from_image_preset(cls, preset, class_names, num_frames=8, image_size=None, temporal_kernel=3,
                          temporal_stride=2, window=None, inflation="center", drop_path_rate=None, **kwargs):
        """Inflates the image encoder of any Florence preset (CLIP or image classifier) into a video Task.

        Args:
            preset: a Florence preset name or directory.
            class_names: list of str.
            num_frames, temporal_kernel, temporal_stride, window, inflation, drop_path_rate: see
                `VideoCoSwinBackbone.from_image_backbone`. `inflation` defaults to `"center"`, which keeps the
                image model's features exactly on still clips.
            image_size: frame side; default the preset's.
            **kwargs: the Task's constructor arguments (`label_smoothing`, `dropout`, `objective`,
                `motion_radius`).
        """
        from florence_keras.models.florence_clip import FlorenceCLIP  # local: avoids a cycle of Tasks

        clip = FlorenceCLIP.from_preset(preset)
        image_backbone = clip.backbone
        video_encoder = VideoCoSwinBackbone.from_image_backbone(
            image_backbone, num_frames=num_frames, temporal_kernel=temporal_kernel, temporal_stride=temporal_stride,
            window=window, inflation=inflation, drop_path_rate=drop_path_rate, image_size=image_size)
        backbone = FlorenceBackbone(video_encoder, image_backbone.text_encoder, image_backbone.projection_dim,
                                    logit_scale_init=image_backbone.logit_scale_init,
                                    logit_scale_max=image_backbone.logit_scale_max,
                                    dtype=image_backbone.dtype_policy)
        backbone.image_projection.set_weights(image_backbone.image_projection.get_weights())
        backbone.text_projection.set_weights(image_backbone.text_projection.get_weights())
        backbone.logit_scale_layer.set_weights(image_backbone.logit_scale_layer.get_weights())
        preprocessor = clip.preprocessor
        if image_size is not None and preprocessor is not None:
            preprocessor.image_converter.image_size = (image_size, image_size)
        return cls(backbone=backbone, preprocessor=preprocessor, class_names=class_names, **kwargs)

    # ------------------------------------------------------------------------------------------------
    # Inputs.

    def video_inputs(self, videos):
        """Raw clips `(B, T, H, W, 3)` in `[0, 255]` (any dtype) -> normalised float32 clips.

        Frames of another size than `image_size` are resized (bilinear, antialiased) first.
        """
        if self.preprocessor is None or self.preprocessor.image_converter is None:
            raise ValueError("This classifier has no image converter; call it on normalised clips instead.")
        videos = ops.cast(ops.convert_to_tensor(videos), "float32")
        shape = ops.shape(videos)
        frames = ops.reshape(videos, (-1, videos.shape[2], videos.shape[3], videos.shape[4]))
        if tuple(videos.shape[2:4]) != (self.image_size, self.image_size):
            frames = ops.image.resize(frames, (self.image_size, self.image_size), interpolation="bilinear",
                                      antialias=True)
        frames = ops.cast(self.preprocessor.image_converter.normalizer()(frames), "float32")
        return ops.reshape(frames, (shape[0], shape[1], self.image_size, self.image_size, 3))

    def logits(self, normalized_videos, training=False):
        """Class logits of normalised clips of any frame count (the encoder runs on their own shape)."""
        encoder = self.backbone.image_encoder
        if tuple(normalized_videos.shape[1:]) == tuple(encoder.video_shape):
            return self(normalized_videos, training=training)
        pooled = encoder.forward_features(normalized_videos, training=training)["pooled_output"]
        return self.head(self.head_dropout(self._head_features(pooled, normalized_videos), training=training))

    def embed_videos(self, normalized_videos, training=False):
        """Unit-norm embeddings `(B, projection_dim)` of normalised clips in the text space."""
        return self.backbone.embed_images(normalized_videos, training=training)

    def encode_videos(self, videos, batch_size=8):
        """Raw clips (uint8 `(B, T, H, W, 3)`) -> unit-norm float32 numpy embeddings."""
        videos = np.asarray(videos)
        out = [np.asarray(self.embed_videos(self.video_inputs(videos[i:i + batch_size])))
               for i in range(0, len(videos), batch_size)]
        return np.concatenate(out, axis=0)

    def predict(self, x, batch_size=8, verbose=None, **kwargs):
        """Class probabilities of raw clips: `(B, T, H, W, 3)`, or views `(B, V, T, H, W, 3)` (averaged)."""
        del verbose, kwargs
        x = np.asarray(x)
        views = x.ndim == 6
        if not views and x.ndim != 5:
            raise ValueError(f"`x` must be clips (B, T, H, W, 3) or views (B, V, T, H, W, 3). Received: {x.shape}")
        flat = x.reshape((-1,) + x.shape[-4:]) if views else x
        probs = []
        for start in range(0, len(flat), batch_size):
            logits = self.logits(self.video_inputs(flat[start:start + batch_size]))
            probs.append(np.asarray(ops.softmax(ops.cast(logits, "float32"), axis=-1)))
        probs = np.concatenate(probs, axis=0)
        return probs.reshape(x.shape[0], x.shape[1], -1).mean(axis=1) if views else probs

    # ------------------------------------------------------------------------------------------------
    # Training.

    def default_loss(self):
        """Sparse softmax cross-entropy on logits (Keras's own, for `compile`); `compute_loss` and the
        trainer apply this Task's `label_smoothing` on top of the same cross-entropy."""
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def preprocess_samples(self, x, y=None, sample_weight=None):
        """`fit` takes normalised clips and labels: passed unchanged."""
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Label-smoothed cross-entropy of the logits `y_pred` against int labels `y` (mean over the batch)."""
        if y is None:
            raise ValueError("The video classifier's loss needs labels `y`.")
        return self.with_layer_losses(ops.mean(self._cross_entropy(y, y_pred)))

    def _cross_entropy(self, labels, logits):
        targets = ops.one_hot(ops.cast(labels, "int32"), len(self.class_names))
        smoothing = self.label_smoothing
        targets = targets * (1.0 - smoothing) + smoothing / len(self.class_names)
        return -ops.sum(targets * ops.log_softmax(ops.cast(logits, "float32"), axis=-1), axis=-1)

    def replica_loss(self, x, y=None, replica_context=None, training=True):
        """One replica's share of the loss on `x = {"videos", ...}` (the trainer's step).

        `classify`: Σ over local clips of the smoothed cross-entropy / global batch. `unicl`: the UniCL loss of
        the clips' and captions' embeddings (gathered across replicas), with `y` as the positive keys.
        """
        if not isinstance(x, dict) or "videos" not in x:
            raise ValueError(f"Video batches are {{'videos', ...}}. Received: "
                             f"{sorted(x) if isinstance(x, dict) else type(x).__name__}")
        if y is None:
            raise ValueError("Video training batches need 'labels' (class indices, or caption keys for unicl).")
        videos = self.video_inputs(x["videos"])
        if self.objective == "unicl":
            video_embeddings = self.embed_videos(videos, training=training)
            text_embeddings = self.backbone.embed_texts(x["token_ids"], training=training)
            return self.with_layer_losses(unicl_loss(video_embeddings, text_embeddings, y,
                                                     self.backbone.logit_scale(), replica_context=replica_context))
        per_clip = self._cross_entropy(y, self.logits(videos, training=training))
        replicas = 1 if replica_context is None else replica_context.num_replicas_in_sync
        global_batch = ops.cast(ops.shape(per_clip)[0] * replicas, "float32")
        return self.with_layer_losses(ops.sum(per_clip) / global_batch)

    def training_scalars(self):
        return {"logit_scale": self.backbone.logit_scale()} if self.objective == "unicl" else {}

    def get_config(self):
        config = super().get_config()
        config.update({"class_names": list(self.class_names), "label_smoothing": self.label_smoothing,
                       "dropout": self.dropout, "objective": self.objective, "motion_radius": self.motion_radius})
        return config

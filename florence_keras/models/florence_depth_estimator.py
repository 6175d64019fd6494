"""FlorenceDepthEstimator: monocular depth from the CoSwin feature pyramid, as a keras-hub Task."""

import keras
import numpy as np
from keras import ops

from florence_keras.layers.depth_decoder import DepthDecoder
from florence_keras.layers.depth_upsampling_head import upsampling_steps
from florence_keras.losses.depth_metric import DepthMetric
from florence_keras.losses.scale_invariant_log_loss import ScaleInvariantLogLoss
from florence_keras.models.florence_backbone import FlorenceBackbone
from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
from florence_keras.models.florence_task import FlorenceTask


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceDepthEstimator(FlorenceTask):
    """Per-pixel depth in metres from a Florence backbone's image encoder (SPEC §3, the depth axis: ours).

    The CoSwin stages' outputs P2…P5 (strides 4…32) go through a `DepthDecoder` (FPN-style top-down fusion,
    progressive upsampling to full resolution, bounded positive depth). The text tower, projections, logit
    scale and the encoder's final norm are not used and are frozen (`trainable=False`).

    Calling the Task on normalised images `(B, S, S, 3)` (`S = image_size`) returns float32 depth `(B, S, S)`.
    `predict(images)` takes raw images of any size (`[0, 255]`, one batch or a list), resizes each to `S × S`
    (bilinear, antialiased, whole image: no crop, so geometry is kept), normalises it with the preset's image
    converter and returns depth maps at each input's own resolution. The exported `estimate_depth` signature
    runs the same `depth_inputs` / `resize_depth` code.

    Training: `compile()` defaults to AdamW at a constant rate, `ScaleInvariantLogLoss(lam=silog_lambda,
    gradient_weight=gradient_weight)` and AbsRel / δ<1.25 (`DepthMetric`); `fit` takes normalised images and
    depth `(B, S, S)` in metres (0 = invalid). The training system calls `replica_loss` with batches
    `{"images", "depth", ...}`.

    Args:
        backbone: a `FlorenceBackbone` (its `image_encoder` a `CoSwinBackbone`).
        preprocessor: a `FlorenceCLIPPreprocessor` (its image converter normalises). Optional.
        image_size: int, the square input size; defaults to the image encoder's. Must give the encoder maps at
            every stage (a multiple of its total stride, 32 for 4 stages, is exact).
        decoder_channels: int, the decoder's width. Defaults to 64.
        min_depth, max_depth: float, the output range in metres. Defaults to 0.1 and 100.
        silog_lambda: float in [0, 1], λ of the default loss. Defaults to 0.85 (λ = 1 cannot learn metric scale).
        gradient_weight: float >= 0, weight of the default loss's gradient-matching term. Defaults to 0.5.
        **kwargs: `keras.Model` arguments.

    Example:
    >>> estimator = FlorenceDepthEstimator.from_preset("florence_mini_builtin")   # doctest: +SKIP
    >>> depth = estimator.predict(images)   # (B, H, W) metres, at the images' size   # doctest: +SKIP
    """

    backbone_cls = FlorenceBackbone
    preprocessor_cls = FlorenceCLIPPreprocessor
    # The toolkit trainer's batches (`check_training_batch`): normalised images and depth in metres (0 = invalid).
    training_batch_spec = {"images": ("float", 4), "depth": ("float", 3)}

    def __init__(self, backbone, preprocessor=None, image_size=None, decoder_channels=64, min_depth=0.1,
                 max_depth=100.0, silog_lambda=0.85, gradient_weight=0.5, **kwargs):
        encoder = backbone.image_encoder
        if not hasattr(encoder, "forward_features"):
            raise ValueError(f"The depth decoder reads a CoSwin pyramid; this backbone's image encoder is a "
                             f"{type(encoder).__name__}.")
        image_size = int(encoder.image_shape[0]) if image_size is None else image_size
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"`image_size` must be a positive int. Received: image_size={image_size!r}")
        if not 0.0 <= silog_lambda <= 1.0:
            raise ValueError(f"`silog_lambda` must be in [0, 1]. Received: silog_lambda={silog_lambda!r}")
        if gradient_weight < 0:
            raise ValueError(f"`gradient_weight` must be >= 0. Received: gradient_weight={gradient_weight!r}")
        # === Config === (before the functional model: keras-hub's Task compiles in its constructor)
        self.image_size = image_size
        self.decoder_channels = decoder_channels
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.silog_lambda = float(silog_lambda)
        self.gradient_weight = float(gradient_weight)
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        for unused in (backbone.text_encoder, backbone.text_projection, backbone.image_projection,
                       backbone.logit_scale_layer, encoder.final_norm):
            unused.trainable = False  # the decoder reads the stages' maps, not the final norm's
        self.decoder = DepthDecoder(decoder_channels, num_upsamplings=upsampling_steps(encoder.patch_size),
                                    min_depth=min_depth, max_depth=max_depth, dtype=backbone.dtype_policy, name="depth_decoder")
        # === Functional model ===
        images = keras.Input(shape=(image_size, image_size, 3), name="images")
        pyramid = encoder.forward_features(images)["pyramid"]
        levels = [pyramid[f"P{i + 2}"] for i in range(len(pyramid))]
        depth = self.decoder([images] + levels)
        super().__init__(inputs=images, outputs=depth, **kwargs)

    # ------------------------------------------------------------------------------------------------
    # Training.

    def default_loss(self):
        """`ScaleInvariantLogLoss(lam=silog_lambda, gradient_weight=gradient_weight)`."""
        return ScaleInvariantLogLoss(lam=self.silog_lambda, gradient_weight=self.gradient_weight)

    def default_metrics(self):
        """AbsRel and δ<1.25 (no median scaling)."""
        return [DepthMetric("abs_rel"), DepthMetric("delta1")]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss of the predicted depth against the ground truth `y` `(B, S, S)`."""
        if y is None:
            raise ValueError("The depth estimator's loss needs ground-truth depth `y`.")
        return self.with_layer_losses(self.task_loss_or_raise()(y, y_pred, sample_weight))

    def preprocess_samples(self, x, y=None, sample_weight=None):
        """`fit` / `evaluate` take normalised images and depth: passed unchanged (the CLIP preprocessor would
        tokenize)."""
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    def check_training_batch(self, element_spec, image_size=None):
        """Raises a ValueError unless the trainer's batches are `{"images": float (B, S, S, 3), "depth": float
        (B, S, S)}` with `S` this estimator's `image_size` (the keys of `training_batch_spec`; others pass)."""
        super().check_training_batch(element_spec, image_size)
        if image_size is not None and image_size != self.image_size:
            raise ValueError(f"This depth estimator takes {self.image_size}x{self.image_size} images; training asks "
                             f"for {image_size}x{image_size}. Build it with image_size={image_size}.")
        images = element_spec["images"].shape.as_list()
        depth = element_spec["depth"].shape.as_list()
        for axis, name in ((1, "height"), (2, "width")):
            if images[axis] is not None and depth[axis] is not None and images[axis] != depth[axis]:
                raise ValueError(f"Batch 'depth' must have the images' {name}: images {element_spec['images']}, "
                                 f"depth {element_spec['depth']}")

    def replica_loss(self, x, y=None, replica_context=None, training=True):
        """One replica's share of the loss on its batch `x = {"images", "depth", ...}` (the training system's step).

        Σ over local images of the per-image loss / global batch size, so the replicas' losses sum to the global
        mean. `y` (the trainer's `labels`, None when the batch has none) is not used. The loss is the compiled one, else `default_loss()`.
        """
        if not isinstance(x, dict) or "images" not in x or "depth" not in x:
            raise ValueError("Depth batches are {'images', 'depth', ...}. Received: "
                             f"{sorted(x) if isinstance(x, dict) else type(x).__name__}")
        loss_fn = getattr(self, "task_loss", None) or self._training_loss()
        per_image = loss_fn.call(ops.cast(x["depth"], "float32"), self(x["images"], training=training))
        replicas = 1 if replica_context is None else replica_context.num_replicas_in_sync
        global_batch = ops.cast(ops.shape(per_image)[0] * replicas, "float32")
        return self.with_layer_losses(ops.sum(per_image) / global_batch)

    def _training_loss(self):
        if getattr(self, "_default_loss", None) is None:
            self._default_loss = self.default_loss()
        return self._default_loss

    # ------------------------------------------------------------------------------------------------
    # Inference on raw images.

    def depth_inputs(self, images):
        """Raw images `(B, H, W, C)` in `[0, 255]` -> normalised `(B, S, S, 3)`: a whole-image bilinear
        (antialiased) resize, then the preset converter's normalisation. Used by `predict` and serving."""
        if self.preprocessor is None or self.preprocessor.image_converter is None:
            raise ValueError("This depth estimator has no image converter; call it on normalised images instead.")
        images = ops.cast(ops.convert_to_tensor(images), "float32")
        resized = ops.image.resize(images, (self.image_size, self.image_size), interpolation="bilinear",
                                   antialias=True)
        return ops.cast(self.preprocessor.image_converter.normalizer()(resized), "float32")

    @staticmethod
    def resize_depth(depth, height, width):
        """Depth `(B, S, S)` -> `(B, height, width)` (bilinear: depth stays within its neighbours' range)."""
        return ops.image.resize(depth[..., None], (height, width), interpolation="bilinear")[..., 0]

    def predict(self, x, batch_size=16, verbose=None, **kwargs):
        """Depth maps in metres at each input's resolution.

        Args:
            x: raw images in `[0, 255]`: `(B, H, W, C)`, one `(H, W, C)`, or a list of `(H, W, C)` of any sizes
                (C = 1, 3 or 4).
            batch_size: images per forward pass.
            verbose, **kwargs: ignored (Keras's `predict` arguments).

        Returns:
            float32 numpy `(B, H, W)` (`(H, W)` for one image), or a list of `(H_i, W_i)` for a list.
        """
        del verbose, kwargs
        if isinstance(x, (list, tuple)):
            if not x:
                raise ValueError("`x` is an empty list of images.")
            return [self.predict(np.asarray(image), batch_size=batch_size) for image in x]
        x = np.asarray(x)
        if x.ndim == 3:
            return self.predict(x[None], batch_size=batch_size)[0]
        if x.ndim != 4 or x.shape[0] == 0 or min(x.shape[1:3]) < 1:
            raise ValueError(f"`x` must be images (H, W, C) or (B, H, W, C). Received shape: {x.shape}")
        height, width = int(x.shape[1]), int(x.shape[2])
        outputs = []
        for start in range(0, x.shape[0], batch_size):
            depth = self(self.depth_inputs(x[start:start + batch_size]), training=False)
            outputs.append(np.asarray(self.resize_depth(depth, height, width), np.float32))
        return np.concatenate(outputs, axis=0)

    def get_config(self):
        config = super().get_config()
        config.update({"image_size": self.image_size, "decoder_channels": self.decoder_channels,
                       "min_depth": self.min_depth, "max_depth": self.max_depth,
                       "silog_lambda": self.silog_lambda, "gradient_weight": self.gradient_weight})
        return config


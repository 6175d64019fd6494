"""FlorenceImageClassifier: a Florence backbone with a classification head, as a keras-hub Task."""

import keras
import numpy as np
from keras import ops

from florence_keras.losses.unicl_loss import unicl_loss
from florence_keras.losses.unicl_loss_wrapper import UniCLLoss
from florence_keras.models.class_embedding_head import ClassEmbeddingHead
from florence_keras.models.florence_backbone import FlorenceBackbone
from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
from florence_keras.models.florence_task import FlorenceTask
from florence_keras.models.prompt_ensemble import check_class_names_and_templates
from florence_keras.models.prompt_ensemble import prompt_ensemble_embeddings

HEADS = ("unicl", "linear")
DEFAULT_TEMPLATES = ("a photo of a {}.",)


@keras.saving.register_keras_serializable(package="florence_keras")
class FlorenceImageClassifier(FlorenceTask):
    """Image classification with a Florence backbone: the UniCL head (Florence's) or a linear head.

    * `head="unicl"` (SPEC §4, Florence's fine-tuning): the classifier is the class names' text
      embeddings — each class's prompts (`templates` filled with its name) are embedded by the text tower
      and averaged (CLIP's prompt ensemble) into a unit-norm row of `ClassEmbeddingHead`; the logits are
      `s · image_embedding · class_embeddingᵀ` with the backbone's logit scale. Training keeps the UniCL
      loss: batches carry, besides the images, the token ids of one class-name prompt per image
      (`{"images", "token_ids"}`), and the labels are class ids, so the images of a class are positives
      of each other and of its prompts. After training, `update_class_embeddings()` re-embeds the class
      names with the tuned text tower. Without training this is the zero-shot classifier.
    * `head="linear"`: a Dense layer on the image encoder's pooled output (after its final norm, before
      the CLIP projection, as Swin / BEiT fine-tuning do), trained with softmax cross-entropy on class ids.
      The kernel starts at zero [ours; BEiT scales a small random init by 0.001], so the first logits are
      equal and the initial loss is log(num_classes). The text tower, both projections and the logit scale
      are not used and are frozen (`trainable=False`), so weight decay does not shrink them.

    Calling the task on normalised images `(B, H, W, 3)` returns float32 logits `(B, num_classes)`;
    `predict` / `classify` take raw images (the preprocessor converts them). The class names, the head and
    the templates are part of the config, so presets and `.keras` files carry them.

    Training: `compile()` defaults to `AdamWConfig()`'s AdamW at a constant rate, the head's loss (UniCL
    across replicas, or sparse cross-entropy) and top-1 accuracy. `fit` takes `(x, class_ids)` with `x`
    normalised images (linear head) or `{"images", "token_ids"}` (either head), or raw `{"images",
    "texts"}` for the preprocessor. With the UniCL head Keras's `fit` encodes the images twice per step
    (once for the logits it reports, once for the loss); the training system (`FineTuneTrainer`) calls
    `replica_loss` and encodes them once.

    Args:
        backbone: a `FlorenceBackbone`.
        class_names: list of non-empty str, the classes in id order.
        head: "unicl" or "linear". Defaults to "unicl".
        templates: prompt templates with one `{}` for the UniCL head's class embeddings. Defaults to
            `("a photo of a {}.",)`.
        preprocessor: a `FlorenceCLIPPreprocessor` (image converter; its tokenizer embeds the class names).
        **kwargs: `keras.Model` arguments (`name`, ...).

    Example:
    >>> classifier = FlorenceImageClassifier.from_preset(                     # doctest: +SKIP
    ...     "florence_mini_builtin", class_names=["circle", "square"])
    >>> classifier.classify(images)["class_names"]                           # doctest: +SKIP
    """

    backbone_cls = FlorenceBackbone
    preprocessor_cls = FlorenceCLIPPreprocessor

    def __init__(self, backbone, class_names, head="unicl", templates=DEFAULT_TEMPLATES, preprocessor=None,
                 **kwargs):
        if head not in HEADS:
            raise ValueError(f"`head` must be one of {HEADS}. Received: head={head!r}")
        class_names, templates = check_class_names_and_templates(class_names, templates)
        if len(class_names) < 2:
            raise ValueError(f"A classifier needs at least 2 classes. Received: class_names={class_names!r}")
        # === Config === (before the functional model: keras-hub's Task compiles in its constructor)
        self.class_names = class_names
        self.head_type = head
        self.templates = templates
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        if head == "unicl":
            self.head = ClassEmbeddingHead(len(class_names), backbone.projection_dim, name="class_embedding_head")
        else:
            for unused in (backbone.text_encoder, backbone.text_projection, backbone.image_projection,
                           backbone.logit_scale_layer):
                unused.trainable = False
            self.head = keras.layers.Dense(len(class_names), kernel_initializer="zeros", dtype="float32",
                                           name="linear_head")
        # === Functional model ===
        images = keras.Input(shape=tuple(backbone.image_encoder.input.shape[1:]), name="images")
        features = backbone.image_encoder(images)["pooled_output"]
        if head == "unicl":
            embeddings = backbone.image_normalize(backbone.image_projection(features))
            logits = self.head([embeddings, backbone.logit_scale_layer(embeddings)])
        else:
            logits = self.head(features)
        super().__init__(inputs=images, outputs=logits, **kwargs)

    def __call__(self, *args, **kwargs):
        # A training batch `{"images", "token_ids"}` (or a preprocessed `{"images"}`): the logits read the
        # images only.
        if args and isinstance(args[0], dict) and "images" in args[0]:
            args = (args[0]["images"],) + args[1:]
        return super().__call__(*args, **kwargs)

    @property
    def supports_gradient_cache(self):
        """Whether the training system may split the loss into `embed` + `loss_from_embeddings` (UniCL head)."""
        return self.head_type == "unicl"

    @property
    def num_classes(self):
        return len(self.class_names)

    # ------------------------------------------------------------------------------------------------
    # Construction from a CLIP model and presets.

    @classmethod
    def from_clip(cls, clip, class_names, head="unicl", templates=DEFAULT_TEMPLATES, batch_size=256, **kwargs):
        """A classifier on `clip`'s backbone and preprocessor (shared, not copied).

        With the UniCL head the class embeddings are computed now (the zero-shot classifier); the linear
        head starts at zero.
        """
        classifier = cls(clip.backbone, class_names, head=head, templates=templates,
                         preprocessor=clip.preprocessor, **kwargs)
        if head == "unicl":
            classifier.update_class_embeddings(batch_size=batch_size)
        return classifier

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Loads a classifier preset, or builds one on any Florence preset's backbone.

        A `FlorenceImageClassifier` preset restores everything (class names, head, its weights). Any other
        Florence preset (e.g. a `FlorenceCLIP`) needs `class_names=` (and optionally `head=`, `templates=`):
        the backbone and preprocessor are loaded and the UniCL head's class embeddings are computed.
        """
        classifier = super().from_preset(preset, load_weights=load_weights, **kwargs)
        if classifier.head_type == "unicl" and not classifier.head.is_set():
            classifier.update_class_embeddings()
        return classifier

    def update_class_embeddings(self, batch_size=256):
        """(UniCL head) Re-embeds the class names with the current text tower: call after training it."""
        if self.head_type != "unicl":
            raise ValueError("Only the UniCL head has class embeddings; this classifier's head is 'linear'.")
        if self.preprocessor is None:
            raise ValueError("Embedding the class names needs the preprocessor's tokenizer; this classifier has none.")

        def encode(texts):
            return self.backbone.embed_texts(self.preprocessor.tokenize(texts))

        self.head.set_class_embeddings(
            prompt_ensemble_embeddings(encode, self.class_names, self.templates, batch_size=batch_size))

    # ------------------------------------------------------------------------------------------------
    # Training: the task's loss, for Keras `fit` and for the training system.

    def default_loss(self):
        """`UniCLLoss(cross_replica=True)` for the UniCL head (on image and prompt embeddings, see
        `compute_loss`), `SparseCategoricalCrossentropy(from_logits=True)` for the linear head."""
        if self.head_type == "unicl":
            return UniCLLoss(cross_replica=True)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def default_metrics(self):
        """Top-1 accuracy of the logits."""
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Linear head: the compiled loss of the logits. UniCL head: the compiled loss (UniCL) of the image
        and prompt embeddings of `x = {"images", "token_ids"}` against the class ids `y`."""
        if y is None:
            raise ValueError("The classifier's loss needs class ids `y`.")
        task_loss = self.task_loss_or_raise()
        if self.head_type == "linear":
            return self.with_layer_losses(task_loss(y, y_pred, sample_weight))
        outputs = dict(self.embed(x, training=training), logit_scale=self.backbone.logit_scale())
        return self.with_layer_losses(task_loss(y, outputs, sample_weight))

    def preprocess_samples(self, x, y=None, sample_weight=None):
        """Raw images (an array, or `{"images", "texts"}`) go through the preprocessor; model inputs
        (`{"images", "token_ids"}`) pass unchanged."""
        if isinstance(x, dict) and "token_ids" in x:
            return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)
        if self.preprocessor is not None and not isinstance(x, dict):
            x = {"images": x}
        return super().preprocess_samples(x, y, sample_weight)

    def _check_unicl(self, what):
        if self.head_type != "unicl":
            raise ValueError(
                f"`{what}` is the UniCL head's; the linear head's cross-entropy is per example (no "
                "batch-wide term for the gradient cache to split).")

    def embed(self, x, training=False):
        """(UniCL head) Unit-norm image embeddings of `x["images"]` and prompt embeddings of `x["token_ids"]`."""
        self._check_unicl("embed")
        if not isinstance(x, dict) or "token_ids" not in x:
            raise ValueError(
                "The UniCL head trains on {'images', 'token_ids'}: one class-name prompt per image. "
                f"Received: {sorted(x) if isinstance(x, dict) else type(x).__name__}")
        return {
            "image_embeddings": self.backbone.embed_images(x["images"], training=training),
            "text_embeddings": self.backbone.embed_texts(x["token_ids"], training=training),
        }

    def loss_from_embeddings(self, embeddings, y, replica_context=None, block_size=None):
        """(UniCL head) This replica's share of the UniCL loss; see `FlorenceCLIP.loss_from_embeddings`."""
        self._check_unicl("loss_from_embeddings")
        return unicl_loss(
            embeddings["image_embeddings"], embeddings["text_embeddings"], y, self.backbone.logit_scale(),
            block_size=block_size, replica_context=replica_context)

    def replica_loss(self, x, y, replica_context=None, training=True):
        """One replica's share of the head's loss on its batch (the training system's step).

        UniCL head: `loss_from_embeddings(embed(x))`, gathered across `replica_context`'s replicas. Linear
        head: Σ over local examples of the cross-entropy / global batch size (the local batch size times
        the context's replica count), so the replicas' losses sum to the global mean.
        """
        if self.head_type == "unicl":
            return self.loss_from_embeddings(self.embed(x, training=training), y, replica_context=replica_context)
        images = x["images"] if isinstance(x, dict) else x
        logits = self(images, training=training)
        per_example = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        replicas = 1 if replica_context is None else replica_context.num_replicas_in_sync
        global_batch = ops.cast(ops.shape(per_example)[0] * replicas, "float32")
        return ops.sum(ops.cast(per_example, "float32")) / global_batch

    def training_scalars(self):
        """Scalars worth logging while training: the logit scale for the UniCL head, none for the linear."""
        return {"logit_scale": self.backbone.logit_scale()} if self.head_type == "unicl" else {}

    # ------------------------------------------------------------------------------------------------
    # Inference on raw images.

    def _pixels(self, images):
        if self.preprocessor is None or self.preprocessor.image_converter is None:
            raise ValueError("This classifier has no image converter; call it on normalised images instead.")
        converter = self.preprocessor.image_converter
        if isinstance(images, (list, tuple)):
            if not images:
                raise ValueError("`images` is an empty list.")
            converted = [converter(np.asarray(image)) for image in images]
            return ops.concatenate([c[None] if len(c.shape) == 3 else c for c in converted], axis=0)
        images = ops.convert_to_tensor(images)
        if len(images.shape) in (3, 4) and images.shape[0] == 0:
            raise ValueError("`images` is an empty batch.")
        pixels = converter(images)
        return pixels[None] if len(pixels.shape) == 3 else pixels

    def predict_probabilities(self, images, batch_size=32):
        """Class probabilities `(B, num_classes)` (softmax of the logits) of raw images.

        Args:
            images: uint8 or float `(B, H, W, C)` / `(H, W, C)` in `[0, 255]`, or a list of images of
                different sizes (the preset's image converter resizes and normalises them).
            batch_size: images per forward pass.

        Returns:
            float32 numpy array.
        """
        pixels = self._pixels(images)
        logits = [self(pixels[i:i + batch_size], training=False) for i in range(0, int(pixels.shape[0]), batch_size)]
        return np.asarray(ops.softmax(ops.concatenate(logits, axis=0), axis=-1))

    def classify(self, images, top_k=1, batch_size=32):
        """The `top_k` classes of raw images, best first (equal scores: the lower class id first).

        Returns:
            dict of numpy arrays: `class_names` (str `(B, k)`), `class_ids` (int32 `(B, k)`), `scores`
            (float32 `(B, k)`, softmax probabilities) — the outputs of the exported `classify` signature.
        """
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"`top_k` must be a positive int. Received: top_k={top_k!r}")
        probabilities = self.predict_probabilities(images, batch_size=batch_size)
        k = min(top_k, self.num_classes)
        ids = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k].astype(np.int32)
        return {
            "class_names": np.asarray(self.class_names, dtype=object)[ids],
            "class_ids": ids,
            "scores": np.take_along_axis(probabilities, ids, axis=-1),
        }

    def get_config(self):
        config = super().get_config()
        config.update({"class_names": list(self.class_names), "head": self.head_type,
                       "templates": list(self.templates)})
        return config

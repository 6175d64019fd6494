"""A tiny stand-in dual encoder with the FlorenceBackbone contract, and synthetic data for trainer tests.

`ToyDualEncoder` has `embed_images(images, training)`, `embed_texts(token_ids, training)` (L2-normalised
float32 embeddings), the `log_logit_scale` variable, a dict-returning `call`, and FlorenceCLIP's training
interface (`embed`, `loss_from_embeddings`, `replica_loss`, `training_scalars`) with the UniCL loss. Each tower has one
residual block (a composite layer with LayerNorm, Dense, Dropout, Dense) so activation checkpointing and
dropout replay are exercised. `make_toy_dataset` builds a deterministic `make_dataset(request)` callable
following the trainer's data contract, whose global batch of step t is the same whatever the number of
replicas or workers.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from florence_keras.losses import unicl_loss

CONTEXT_LENGTH = 77


class ToyBlock(keras.layers.Layer):
    """Pre-norm residual MLP block: x + Dense(Dropout(Dense(gelu)(LayerNorm(x))))."""

    def __init__(self, width, dropout=0.0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.dropout = dropout
        self.seed = seed
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=self.dtype_policy)
        self.dense_1 = keras.layers.Dense(2 * width, activation="gelu", dtype=self.dtype_policy)
        self.drop = keras.layers.Dropout(dropout, seed=seed, dtype=self.dtype_policy)
        self.dense_2 = keras.layers.Dense(width, dtype=self.dtype_policy)

    def build(self, input_shape):
        self.norm.build(input_shape)
        self.dense_1.build(input_shape)
        self.dense_2.build(tuple(input_shape[:-1]) + (2 * self.width,))
        self.built = True

    def call(self, x, training=False):
        return x + self.dense_2(self.drop(self.dense_1(self.norm(x)), training=training))


class ToyDualEncoder(keras.Model):
    """Conv + block image tower and embedding + block text tower, both ending in L2-normalised D dims."""

    def __init__(self, embed_dim=8, width=16, vocab_size=64, dropout=0.0, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim = embed_dim
        self.width = width
        self.vocab_size = vocab_size
        self.patch = keras.layers.Conv2D(width, 3, strides=2, padding="same", name="patch")
        self.image_block = ToyBlock(width, dropout, seed=seed + 1, name="image_block")
        self.image_projection = keras.layers.Dense(embed_dim, name="image_projection")
        self.token_embedding = keras.layers.Embedding(vocab_size, width, name="token_embedding")
        self.text_block = ToyBlock(width, dropout, seed=seed + 2, name="text_block")
        self.text_projection = keras.layers.Dense(embed_dim, name="text_projection")
        self.log_logit_scale = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(math.log(1 / 0.07)),
            name="log_logit_scale",
            dtype="float32",
        )

    @staticmethod
    def _normalise(x):
        x = ops.cast(x, "float32")
        return x / ops.sqrt(ops.maximum(ops.sum(x * x, axis=-1, keepdims=True), 1e-12))

    def embed_images(self, images, training=False):
        x = self.patch(images)
        x = self.image_block(x, training=training)
        x = ops.mean(x, axis=(1, 2))
        return self._normalise(self.image_projection(x))

    def embed_texts(self, token_ids, training=False):
        x = self.token_embedding(token_ids)
        x = self.text_block(x, training=training)
        x = ops.mean(x, axis=1)
        return self._normalise(self.text_projection(x))

    # The Task training interface (what FlorenceCLIP provides; see training/gradient_cache.py).
    def embed(self, x, training=False):
        return {"image_embeddings": self.embed_images(x["images"], training=training),
                "text_embeddings": self.embed_texts(x["token_ids"], training=training)}

    def logit_scale(self):
        return ops.exp(ops.minimum(self.log_logit_scale, math.log(100.0)))

    def loss_from_embeddings(self, embeddings, y, replica_context=None, block_size=None):
        return unicl_loss(embeddings["image_embeddings"], embeddings["text_embeddings"], y, self.logit_scale(),
                          block_size=block_size, replica_context=replica_context)

    def replica_loss(self, x, y, replica_context=None, training=True):
        return self.loss_from_embeddings(self.embed(x, training=training), y, replica_context=replica_context)

    def training_scalars(self):
        return {"logit_scale": self.logit_scale()}

    def call(self, inputs, training=False):
        return {
            "image_embeddings": self.embed_images(inputs["images"], training=training),
            "text_embeddings": self.embed_texts(inputs["token_ids"], training=training),
            "logit_scale": ops.exp(ops.minimum(self.log_logit_scale, math.log(100.0))),
        }


def build_toy_dual_encoder(image_size=16, **kwargs):
    """Builds a `ToyDualEncoder` and runs it once so that every variable exists."""
    model = ToyDualEncoder(**kwargs)
    model(
        {
            "images": np.zeros((1, image_size, image_size, 3), "float32"),
            "token_ids": np.zeros((1, CONTEXT_LENGTH), "int32"),
        }
    )
    return model


def toy_examples(num_examples, image_size=16, vocab_size=64, num_labels=None, seed=0):
    """Deterministic arrays (images, token_ids, labels); labels repeat so UniCL positives occur."""
    rng = np.random.default_rng(seed)
    num_labels = num_labels or max(2, num_examples // 3)
    labels = rng.integers(0, num_labels, size=num_examples).astype("int64")
    # Identical label => identical text, as with text-hash labels.
    texts = rng.integers(1, vocab_size, size=(num_labels, CONTEXT_LENGTH)).astype("int32")
    images = rng.normal(size=(num_examples, image_size, image_size, 3)).astype("float32")
    return images, texts[labels], labels


def make_toy_dataset(num_examples=64, base_image_size=16, vocab_size=64, seed=0):
    """Returns `make_dataset(request)` over a fixed pool of examples.

    Global batch t is examples [t·G, (t+1)·G) mod the pool (G = global batch size); replica r of that step
    gets the slice [r·b, (r+1)·b). Pipeline p yields, for each step, the batches of its local replicas in
    order — exactly what `distribute_datasets_from_function` hands out, so the global batch of each step
    does not depend on the number of replicas or workers. The stage's image size resizes the images;
    prompt-augmented texts shift token ids by one (a visible, deterministic change).
    """
    images, token_ids, labels = toy_examples(num_examples, base_image_size, vocab_size, seed=seed)

    def make_dataset(request):
        b = request.batch_size
        local_replicas = request.global_batch_size // b // request.num_input_pipelines
        first_replica = request.input_pipeline_id * local_replicas
        size = request.stage.image_size
        augmented = request.stage.prompt_augmented_texts

        def batch_at(index):
            step = index // local_replicas
            replica = first_replica + index % local_replicas
            start = step * request.global_batch_size + replica * b
            rows = tf.math.floormod(start + tf.range(b, dtype=tf.int64), num_examples)
            batch_images = tf.gather(images, rows)
            if size != base_image_size:
                batch_images = tf.image.resize(batch_images, (size, size))
            batch_tokens = tf.gather(token_ids, rows)
            if augmented:
                batch_tokens = tf.math.floormod(batch_tokens + 1, vocab_size)
            return {"images": batch_images, "token_ids": batch_tokens, "labels": tf.gather(labels, rows)}

        return tf.data.Dataset.range(2**62).map(batch_at)

    return make_dataset

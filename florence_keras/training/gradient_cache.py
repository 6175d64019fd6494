"""`GradientCache`: contrastive gradients of a big batch computed chunk by chunk (SPEC §1).

Also holds the plain one-pass step (`full_batch_gradients`) and `logit_scale_from`, shared by both.

The model follows the FlorenceBackbone contract (HELPER_CONTEXT.md): `embed_images(images, training)`,
`embed_texts(token_ids, training)` return L2-normalised embeddings and `log_logit_scale` is the learnable
scalar variable; s = exp(min(log_logit_scale, log 100)).
"""

import math

import tensorflow as tf

from florence_keras.losses.unicl_loss import unicl_loss

# CLIP's cap on the logit scale (SPEC §1 [ours, as CLIP]) for models without `logit_scale_max`.
MAX_LOGIT_SCALE = 100.0


def logit_scale_from(model):
    """Returns s = exp(min(log_logit_scale, log max)) as a float32 scalar tensor.

    The cap is the model's `logit_scale_max` attribute (FlorenceBackbone's), else 100.
    """
    log_scale = tf.cast(tf.convert_to_tensor(model.log_logit_scale), tf.float32)
    maximum = float(getattr(model, "logit_scale_max", MAX_LOGIT_SCALE))
    return tf.exp(tf.minimum(log_scale, math.log(maximum)))


def _check_model(model):
    for name in ("embed_images", "embed_texts", "log_logit_scale", "trainable_variables"):
        if not hasattr(model, name):
            raise ValueError(
                "The model must follow the FlorenceBackbone contract (embed_images, embed_texts, "
                f"log_logit_scale). Received: a {type(model).__name__} without `{name}`"
            )


def full_batch_gradients(model, batch, scale_loss=None):
    """One forward and backward pass over the whole (per-replica) batch.

    Args:
        model: a FlorenceBackbone-like model.
        batch: dict with "images", "token_ids", "labels" (the data contract).
        scale_loss: optional callable applied to the loss before differentiation (loss scaling).

    Returns:
        `(loss, gradients)`: the float32 loss (a replica's share under tf.distribute, see `unicl_loss`) and
        the gradients of the (scaled) loss, aligned with `model.trainable_variables`.
    """
    _check_model(model)
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        u = model.embed_images(batch["images"], training=True)
        v = model.embed_texts(batch["token_ids"], training=True)
        loss = unicl_loss(u, v, batch["labels"], logit_scale_from(model))
        scaled = scale_loss(loss) if scale_loss is not None else loss
    return loss, tape.gradient(scaled, variables)


def _dense(gradient):
    if isinstance(gradient, tf.IndexedSlices):
        return tf.convert_to_tensor(gradient)
    return gradient


class GradientCache:
    """Gradients of a contrastive batch of B examples computed in chunks of `chunk_size`.

    Gao et al.'s gradient cache, used by Florence to fit a 24,576 batch [paper]:

    1. Embed every chunk with no tape (no activations kept) and collect the [B, D] embeddings.
    2. Compute the UniCL loss on the whole batch — under tf.distribute, the embeddings are all-gathered
       here, once per step — and its gradient with respect to the embeddings and the logit scale.
    3. Re-run each chunk's forward pass under a tape and back-propagate the cached embedding gradients
       (`output_gradients`), accumulating the parameter gradients.

    The result equals the full-batch gradient up to float rounding (tests/training/gradient_cache_test.py),
    while activation memory is that of one chunk: both passes run in `tf.while_loop`s with
    `parallel_iterations=1`, so only one chunk is in flight. The loss of step 2 runs `loss_block_size`
    anchors at a time with a closed-form gradient (`losses/blockwise_unicl.py`), so it never holds the
    [B, global B] logits either. What still grows with B: the input batch, the [B, D] embeddings and their
    gradients, and [loss_block_size, global B] blocks.

    Randomness: pass 2 must reproduce pass 1 exactly (same dropout / drop-path masks). Keras layers draw
    randomness from `keras.random.SeedGenerator` states, which are non-trainable variables of the model;
    all non-trainable variables (seed states, and moving statistics if any) are snapshotted before pass 1
    and restored before pass 2, so pass 2 replays pass 1's draws chunk by chunk and the state advances as
    for a single pass. Randomness not drawn from model variables (unseeded `tf.random.*` ops inside a
    layer) would differ between the passes: layers must use seeded Keras random ops (Keras's `Dropout`
    does). Batch-statistics layers (BatchNorm) see per-chunk statistics; Florence has none.

    Args:
        model: a FlorenceBackbone-like model (embed_images, embed_texts, log_logit_scale).
        chunk_size: int > 0; the per-replica batch must be a multiple of it.
        loss_block_size: int > 0, anchors per block of the loss (default: `chunk_size`).

    Example:

    >>> cache = GradientCache(model, chunk_size=64)  # doctest: +SKIP
    >>> loss, grads = cache(batch)                   # doctest: +SKIP
    """

    def __init__(self, model, chunk_size, loss_block_size=None):
        _check_model(model)
        if not isinstance(chunk_size, int) or chunk_size <= 0:
            raise ValueError(f"`chunk_size` must be a positive int. Received: chunk_size={chunk_size!r}")
        if loss_block_size is None:
            loss_block_size = chunk_size
        if not isinstance(loss_block_size, int) or loss_block_size <= 0:
            raise ValueError(
                f"`loss_block_size` must be a positive int. Received: loss_block_size={loss_block_size!r}")
        self.model = model
        self.chunk_size = chunk_size
        self.loss_block_size = loss_block_size

    def __call__(self, batch, scale_loss=None):
        """Computes `(loss, gradients)` like `full_batch_gradients`, chunk by chunk.

        Args:
            batch: dict with "images", "token_ids", "labels"; a static batch dimension is required.
            scale_loss: optional callable applied to the loss before differentiation (loss scaling).

        Returns:
            `(loss, gradients)` aligned with `model.trainable_variables` (dense tensors).
        """
        model = self.model
        images, token_ids, labels = batch["images"], batch["token_ids"], batch["labels"]
        batch_size = images.shape[0]
        if batch_size is None:
            raise ValueError(
                "GradientCache needs a static batch size (batch the dataset with drop_remainder=True). "
                f"Received: images.shape={tuple(images.shape)}"
            )
        if batch_size % self.chunk_size:
            raise ValueError(
                "The per-replica batch size must be a multiple of `chunk_size`. "
                f"Received: batch_size={batch_size}, chunk_size={self.chunk_size}"
            )
        num_chunks = batch_size // self.chunk_size
        if num_chunks == 1:
            loss, grads = full_batch_gradients(model, batch, scale_loss)
            return loss, [None if g is None else _dense(g) for g in grads]

        variables = model.trainable_variables
        state = model.non_trainable_variables
        saved_state = [tf.identity(tf.convert_to_tensor(v)) for v in state]
        def split(x):  # [B, ...] -> [num_chunks, chunk_size, ...]; inner dims may be dynamic
            return tf.reshape(x, tf.concat([[num_chunks, self.chunk_size], tf.shape(x)[1:]], axis=0))

        image_chunks = split(images)
        text_chunks = split(token_ids)

        # Pass 1: embeddings of every chunk, no tape.
        def embed_chunk(i, image_array, text_array):
            u = model.embed_images(image_chunks[i], training=True)
            v = model.embed_texts(text_chunks[i], training=True)
            return (
                i + 1,
                image_array.write(i, tf.cast(u, tf.float32)),
                text_array.write(i, tf.cast(v, tf.float32)),
            )

        with tf.control_dependencies(saved_state):
            _, image_array, text_array = tf.while_loop(
                lambda i, *_: i < num_chunks,
                embed_chunk,
                (
                    tf.constant(0),
                    tf.TensorArray(tf.float32, size=num_chunks),
                    tf.TensorArray(tf.float32, size=num_chunks),
                ),
                parallel_iterations=1,
            )
        u = tf.stop_gradient(image_array.concat())
        v = tf.stop_gradient(text_array.concat())

        # Loss over the whole batch (the cross-replica gather happens here, once), and its gradients.
        with tf.GradientTape() as tape:
            tape.watch([u, v])
            loss = unicl_loss(u, v, labels, logit_scale_from(model), block_size=self.loss_block_size)
            scaled = scale_loss(loss) if scale_loss is not None else loss
        du, dv, d_log_scale = tape.gradient(scaled, [u, v, model.log_logit_scale])
        du = tf.reshape(du, [num_chunks, self.chunk_size, -1])
        dv = tf.reshape(dv, [num_chunks, self.chunk_size, -1])

        # Replay: restore the random-seed (and any other non-trainable) state of pass 1.
        restores = [var.assign(value) for var, value in zip(state, saved_state)]

        # Pass 2: re-run each chunk under a tape and back-propagate the cached embedding gradients.
        def backprop_chunk(i, *accumulators):
            with tf.GradientTape() as chunk_tape:
                u_chunk = model.embed_images(image_chunks[i], training=True)
                v_chunk = model.embed_texts(text_chunks[i], training=True)
            grads = chunk_tape.gradient(
                [u_chunk, v_chunk],
                variables,
                output_gradients=[tf.cast(du[i], u_chunk.dtype), tf.cast(dv[i], v_chunk.dtype)],
            )
            return (i + 1,) + tuple(
                acc if g is None else acc + tf.cast(_dense(g), acc.dtype)
                for acc, g in zip(accumulators, grads)
            )

        with tf.control_dependencies([op for op in restores if op is not None] + [du, dv]):
            start = tf.constant(0)
        outputs = tf.while_loop(
            lambda i, *_: i < num_chunks,
            backprop_chunk,
            (start,) + tuple(tf.zeros(var.shape, var.dtype) for var in variables),
            parallel_iterations=1,
        )
        grads = list(outputs[1:])
        for index, var in enumerate(variables):
            if var is model.log_logit_scale and d_log_scale is not None:
                grads[index] = grads[index] + tf.cast(d_log_scale, grads[index].dtype)
        return loss, grads

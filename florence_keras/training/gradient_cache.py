"""`GradientCache`: contrastive gradients of a big batch computed chunk by chunk (SPEC §1).

Also holds the plain one-pass step (`full_batch_gradients`). Both drive the Task's own loss:

* `full_batch_gradients` differentiates `task.replica_loss(x, labels, replica_context, training=True)`;
* `GradientCache` uses the Task's split of that loss into `task.embed(x, training)` (per-example outputs,
  e.g. image and text embeddings) and `task.loss_from_embeddings(embeddings, labels, replica_context,
  block_size)` (e.g. UniCL over the gathered global batch).

`FlorenceCLIP` and `FlorenceImageClassifier` (UniCL head) provide all three; the linear-head classifier
says `supports_gradient_cache = False` (its cross-entropy is per example: there is no batch-wide term to
cache).

The replica context is always passed explicitly by the caller (`UniCLTrainer` passes its own inside
`strategy.run`); nothing here looks for a distribution strategy.
"""

import tensorflow as tf

from florence_keras.layers.example_window import current_example_window
from florence_keras.layers.example_window import example_window

# Keys of a trainer batch that are not model inputs: the labels, and each example's stream position (the
# trainer's data-position bookkeeping, see `DatasetRequest`).
_DATA_KEYS = ("labels", "positions")


def split_batch(batch):
    """`(x, labels)` of a trainer batch (x: the model inputs; labels: `batch["labels"]`, or None without one)."""
    if not isinstance(batch, dict):
        raise ValueError(f"A training batch must be a dict. Received: {type(batch).__name__}")
    return {k: v for k, v in batch.items() if k not in _DATA_KEYS}, batch.get("labels")


def check_task(task, gradient_cache=False):
    """Raises a clear error unless `task` provides the training interface (see the module docstring)."""
    needed = ("replica_loss", "trainable_variables") + (("embed", "loss_from_embeddings") if gradient_cache else ())
    missing = [name for name in needed if not hasattr(task, name)]
    if not missing and gradient_cache and not getattr(task, "supports_gradient_cache", True):
        raise ValueError(
            f"This {type(task).__name__}'s loss has no batch-wide term to split, so the gradient cache does not "
            "apply (e.g. the linear head's cross-entropy): leave `chunk_size` unset.")
    if missing:
        what = "the gradient cache needs" if gradient_cache else "training needs"
        raise ValueError(
            f"{what} a Task that owns its loss ({', '.join(needed[:1] + needed[2:])}), e.g. FlorenceCLIP or "
            f"FlorenceImageClassifier(head='unicl'). Received: a {type(task).__name__} without "
            f"{', '.join(missing)}")


def full_batch_gradients(task, batch, scale_loss=None, replica_context=None):
    """One forward and backward pass of the Task's loss over the whole (per-replica) batch.

    Args:
        task: a Task with `replica_loss` (FlorenceCLIP, FlorenceImageClassifier).
        batch: dict with "labels" and the Task's inputs ("images", "token_ids").
        scale_loss: optional callable applied to the loss before differentiation (loss scaling).
        replica_context: None, or the caller's replica context (inside `strategy.run`) for the Task's
            cross-replica terms (UniCL's gather).

    Returns:
        `(loss, gradients)`: the float32 loss (this replica's share of the global mean) and the gradients
        of the (scaled) loss, aligned with `task.trainable_variables`.
    """
    check_task(task)
    x, labels = split_batch(batch)
    variables = task.trainable_variables
    with tf.GradientTape() as tape:
        loss = task.replica_loss(x, labels, replica_context=replica_context, training=True)
        scaled = scale_loss(loss) if scale_loss is not None else loss
    return loss, tape.gradient(scaled, variables)


def _dense(gradient):
    if isinstance(gradient, tf.IndexedSlices):
        return tf.convert_to_tensor(gradient)
    return gradient


class GradientCache:
    """Gradients of a contrastive batch of B examples computed in chunks of `chunk_size`.

    Gao et al.'s gradient cache, used by Florence to fit a 24,576 batch [paper]:

    1. Embed every chunk with no tape (no activations kept): `task.embed(chunk)` for each chunk, the
       per-example outputs concatenated to the whole batch's.
    2. Compute the Task's loss on the whole batch, `task.loss_from_embeddings` — with a replica context,
       the embeddings are all-gathered here, once per step — and its gradient with respect to the
       embeddings and to the variables the loss reads directly (the logit scale).
    3. Re-run each chunk's forward pass under a tape and back-propagate the cached embedding gradients
       (`output_gradients`), accumulating the parameter gradients.

    The result equals the full-batch gradient up to float rounding (tests/training/gradient_cache_test.py),
    while activation memory is that of one chunk: both passes run in `tf.while_loop`s with
    `parallel_iterations=1`, so only one chunk is in flight. The loss of step 2 runs `loss_block_size`
    anchors at a time with a closed-form gradient (`losses/blockwise_unicl.py`), so it never holds the
    [B, global B] logits either. What still grows with B: the input batch, the [B, D] embeddings and their
    gradients, and [loss_block_size, global B] blocks.

    Randomness: pass 2 must reproduce pass 1 exactly (same drop-path masks), and the chunks together must
    draw what the whole batch would. Keras layers draw randomness from `keras.random.SeedGenerator` states,
    non-trainable variables of the model; all non-trainable variables (seed states, and moving statistics if
    any) are snapshotted once and restored before every chunk of both passes, and each chunk runs inside
    `example_window(offset of its rows, global batch)`: DropPath draws the masks of the whole global batch
    and keeps its chunk's rows, so the cache's masks are the full batch's (and, under the trainer's
    per-replica window, one device's), and the seed state ends advanced as after one pass. A random layer
    that ignores the window (Keras's element-wise `Dropout`, rate 0 in every Florence preset) would draw the
    same mask pattern in every chunk. Randomness not drawn from model variables (unseeded `tf.random.*` ops)
    would differ between the passes: layers must use seeded Keras random ops. Batch-statistics layers
    (BatchNorm) see per-chunk statistics; Florence has none.

    Args:
        task: a Task with `replica_loss`, `embed` and `loss_from_embeddings` (FlorenceCLIP,
            FlorenceImageClassifier with the UniCL head).
        chunk_size: int > 0; the per-replica batch must be a multiple of it.
        loss_block_size: int > 0, anchors per block of the loss (default: `chunk_size`).

    Example:

    >>> cache = GradientCache(clip, chunk_size=64)  # doctest: +SKIP
    >>> loss, grads = cache(batch)                  # doctest: +SKIP
    """

    def __init__(self, task, chunk_size, loss_block_size=None):
        check_task(task, gradient_cache=True)
        if not isinstance(chunk_size, int) or chunk_size <= 0:
            raise ValueError(f"`chunk_size` must be a positive int. Received: chunk_size={chunk_size!r}")
        if loss_block_size is None:
            loss_block_size = chunk_size
        if not isinstance(loss_block_size, int) or loss_block_size <= 0:
            raise ValueError(
                f"`loss_block_size` must be a positive int. Received: loss_block_size={loss_block_size!r}")
        self.task = task
        self.chunk_size = chunk_size
        self.loss_block_size = loss_block_size

    def __call__(self, batch, scale_loss=None, replica_context=None):
        """Computes `(loss, gradients)` like `full_batch_gradients`, chunk by chunk.

        Args:
            batch: dict with "labels" and the Task's inputs; a static batch dimension is required.
            scale_loss: optional callable applied to the loss before differentiation (loss scaling).
            replica_context: None, or the caller's replica context (the loss gathers across it).

        Returns:
            `(loss, gradients)` aligned with `task.trainable_variables` (dense tensors).
        """
        task = self.task
        x, labels = split_batch(batch)
        keys = sorted(x)
        batch_size = x[keys[0]].shape[0]
        if batch_size is None:
            raise ValueError(
                "GradientCache needs a static batch size (batch the dataset with drop_remainder=True). "
                f"Received: {keys[0]}.shape={tuple(x[keys[0]].shape)}"
            )
        if batch_size % self.chunk_size:
            raise ValueError(
                "The per-replica batch size must be a multiple of `chunk_size`. "
                f"Received: batch_size={batch_size}, chunk_size={self.chunk_size}"
            )
        num_chunks = batch_size // self.chunk_size
        if num_chunks == 1:
            loss, grads = full_batch_gradients(task, batch, scale_loss, replica_context=replica_context)
            return loss, [None if g is None else _dense(g) for g in grads]

        variables = task.trainable_variables
        state = task.non_trainable_variables
        saved_state = [tf.identity(tf.convert_to_tensor(v)) for v in state]

        def split(value):  # [B, ...] -> [num_chunks, chunk_size, ...]; inner dims may be dynamic
            return tf.reshape(value, tf.concat([[num_chunks, self.chunk_size], tf.shape(value)[1:]], axis=0))

        chunks = {key: split(value) for key, value in x.items()}

        def chunk_inputs(i):
            return {key: value[i] for key, value in chunks.items()}

        # Every chunk starts from the step's random-seed state and draws for the rows it holds of the global batch
        # (`example_window`), so chunk i's DropPath masks are rows of the whole batch's, and after the last chunk
        # the state has advanced as for one pass over the whole batch.
        outer_offset, global_batch_size = current_example_window() or (0, batch_size)

        def chunk_window(i):
            return example_window(tf.cast(outer_offset, tf.int32) + tf.cast(i, tf.int32) * self.chunk_size,
                                  global_batch_size)

        def embed_chunk_from_saved_state(i):
            """Chunk i's outputs; call it inside `chunk_window(i)`."""
            restores = [op for op in (var.assign(value) for var, value in zip(state, saved_state)) if op is not None]
            with tf.control_dependencies(restores + saved_state):
                return task.embed(chunk_inputs(i), training=True)

        # Pass 1: the per-example outputs of every chunk, no tape. Chunk 0 runs first, outside the loop, to
        # learn the structure of the Task's outputs (the loop's state).
        with chunk_window(0):
            first = embed_chunk_from_saved_state(0)
        arrays = {key: tf.TensorArray(tf.float32, size=num_chunks).write(0, tf.cast(value, tf.float32))
                  for key, value in first.items()}

        def embed_chunk(i, arrays):
            with chunk_window(i):
                outputs = embed_chunk_from_saved_state(i)
            return i + 1, {key: arrays[key].write(i, tf.cast(outputs[key], tf.float32)) for key in arrays}

        _, arrays = tf.while_loop(
            lambda i, _: i < num_chunks, embed_chunk, (tf.constant(1), arrays), parallel_iterations=1)
        embeddings = {key: tf.stop_gradient(array.concat()) for key, array in arrays.items()}

        # The loss over the whole batch (the cross-replica gather happens here, once), and its gradients
        # with respect to the embeddings and to the variables it reads directly (e.g. the logit scale).
        with tf.GradientTape() as tape:
            tape.watch(list(embeddings.values()))
            loss = task.loss_from_embeddings(embeddings, labels, replica_context=replica_context,
                                             block_size=self.loss_block_size)
            scaled = scale_loss(loss) if scale_loss is not None else loss
        embedding_grads, direct_grads = tape.gradient(scaled, (embeddings, list(variables)))
        embedding_grads = {
            key: split(tf.zeros_like(embeddings[key]) if embedding_grads[key] is None else embedding_grads[key])
            for key in embeddings
        }

        # Pass 2: re-run each chunk under a tape (from the same seed state: the same masks as pass 1) and
        # back-propagate the cached embedding gradients.
        def backprop_chunk(i, *accumulators):
            # The window stays open for the backward pass too: activation checkpointing recomputes blocks there,
            # and their DropPath must draw the same rows again.
            with chunk_window(i):
                with tf.GradientTape() as chunk_tape:
                    outputs = embed_chunk_from_saved_state(i)
                grads = chunk_tape.gradient(
                    [outputs[key] for key in embedding_grads],
                    variables,
                    output_gradients=[tf.cast(embedding_grads[key][i], outputs[key].dtype)
                                      for key in embedding_grads],
                )
            return (i + 1,) + tuple(
                acc if g is None else acc + tf.cast(_dense(g), acc.dtype)
                for acc, g in zip(accumulators, grads)
            )

        with tf.control_dependencies(list(embedding_grads.values())):
            start = tf.constant(0)
        outputs = tf.while_loop(
            lambda i, *_: i < num_chunks,
            backprop_chunk,
            (start,) + tuple(tf.zeros(var.shape, var.dtype) for var in variables),
            parallel_iterations=1,
        )
        grads = [
            accumulated if direct is None else accumulated + tf.cast(_dense(direct), accumulated.dtype)
            for accumulated, direct in zip(outputs[1:], direct_grads)
        ]
        return loss, grads

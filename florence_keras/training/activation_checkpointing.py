"""Activation checkpointing (rematerialisation) of a model's blocks, switchable by the trainer.

Florence trains with activation checkpointing [paper]: a block keeps only its inputs for the backward pass
and recomputes its internal activations there, trading one extra forward pass for memory that no longer
grows with depth × activations.

Why not `keras.RematScope`: on the TensorFlow backend Keras wraps `call` in `tf.recompute_grad`, which
(Keras 3.15) fails inside `tf.function` when the layer gets keyword arguments such as `training`, re-runs
the call outside the layer's mixed-precision autocast scope, and draws new dropout / drop-path masks in
the recomputation (the Keras `SeedGenerator` state has advanced), silently giving wrong gradients.

This module wraps a block's `call` in a `tf.custom_gradient` whose gradient function:
* waits for the upstream gradients (so graph optimisers cannot merge the recomputation with the forward);
* restores the block's non-trainable state (SeedGenerator states) to its value before the forward pass, so
  the recomputation draws the same random masks (and leaves the state where the forward left it);
* recomputes the block under the autocast scope active during the forward pass, then back-propagates.

No hook in the model is needed: `enable_activation_checkpointing(model)` finds the "blocks" — the
outermost layers that own sub-layers and are not themselves `keras.Model`s (Swin / transformer blocks,
conv token embeddings), descending into nested models (the towers) — or takes explicit layer names or a
predicate. It must be called after the model is built and before the training step is traced.
"""

import functools

import keras
import tensorflow as tf

# Private Keras API: the autocast scope that Layer.__call__ opened (needed to recompute in mixed precision).
from keras.src.backend import AutocastScope
from keras.src.backend import get_autocast_scope


def _children(layer):
    # Keras 3 keeps direct sub-layers in `_flatten_layers(recursive=False)`; Model.layers is the same list.
    return list(layer._flatten_layers(include_self=False, recursive=False))


def _all_layers(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


def find_blocks(model):
    """Returns the outermost non-Model layers that own sub-layers, descending into nested Models.

    Args:
        model: a built Keras model.

    Returns:
        A list of layers, in model order.
    """
    blocks = []

    def visit(layer):
        for child in _children(layer):
            if isinstance(child, keras.Model):
                visit(child)
            elif _children(child) and child.weights:
                blocks.append(child)

    visit(model)
    return blocks


def _is_float_tensor(x):
    return isinstance(x, (tf.Tensor, tf.Variable)) and x.dtype.is_floating


def _checkpointed_call(layer, original_call):
    @functools.wraps(original_call)
    def call(*args, **kwargs):
        flat = tf.nest.flatten((args, kwargs))
        if any(isinstance(x, keras.KerasTensor) for x in flat):
            return original_call(*args, **kwargs)  # symbolic (functional construction / shape inference)
        positions = [i for i, x in enumerate(flat) if _is_float_tensor(x)]
        if not positions:
            return original_call(*args, **kwargs)
        state = layer.non_trainable_variables
        saved_state = [tf.identity(tf.convert_to_tensor(v)) for v in state]
        scope = get_autocast_scope()
        autocast_dtype = None if scope is None else scope.dtype

        def run(tensors):
            values = list(flat)
            for position, tensor in zip(positions, tensors):
                values[position] = tensor
            call_args, call_kwargs = tf.nest.pack_sequence_as((args, kwargs), values)
            current = get_autocast_scope()
            if autocast_dtype is None or (current is not None and current.dtype == autocast_dtype):
                return original_call(*call_args, **call_kwargs)
            # Recomputation in the backward pass runs outside Layer.__call__: reopen a scope of the
            # forward pass's dtype (a fresh object: re-entering Keras's own would corrupt its restore).
            with AutocastScope(autocast_dtype):
                return original_call(*call_args, **call_kwargs)

        @tf.custom_gradient
        def forward(*tensors):
            with tf.control_dependencies(saved_state):
                outputs = run(tensors)

            def grad_fn(*upstream, variables=None):
                variables = list(variables or [])
                with tf.control_dependencies(upstream):
                    inputs = [tf.identity(t) for t in tensors]
                    restores = [v.assign(s) for v, s in zip(state, saved_state)]
                with tf.control_dependencies([r for r in restores if r is not None] + inputs):
                    with tf.GradientTape() as tape:
                        tape.watch(inputs)
                        recomputed = run(inputs)
                grads = tape.gradient(
                    tf.nest.flatten(recomputed),
                    inputs + variables,
                    output_gradients=list(upstream),
                    unconnected_gradients=tf.UnconnectedGradients.ZERO,
                )
                return grads[: len(inputs)], grads[len(inputs):]

            return outputs, grad_fn

        return forward(*[flat[i] for i in positions])

    return call


def enable_activation_checkpointing(model, layers=None):
    """Rematerialises the selected layers of `model` in the backward pass.

    Args:
        model: a built Keras model.
        layers: None (the blocks found by `find_blocks`), a list of layer names, or a predicate
            `layer -> bool` evaluated on every nested layer.

    Returns:
        The names of the wrapped layers.

    Example:

    >>> names = enable_activation_checkpointing(model)  # doctest: +SKIP
    """
    if layers is None:
        selected = find_blocks(model)
    elif callable(layers):
        selected = [layer for layer in _all_layers(model) if layers(layer)]
    else:
        wanted = set(layers)
        selected = [layer for layer in _all_layers(model) if layer.name in wanted]
        missing = wanted - {layer.name for layer in selected}
        if missing:
            raise ValueError(
                f"No layer of the model is named {sorted(missing)}. Received: layers={list(layers)}"
            )
    for layer in selected:
        if getattr(layer, "_florence_checkpointed", False):
            continue
        layer.call = _checkpointed_call(layer, layer.call)
        layer._florence_checkpointed = True
    return [layer.name for layer in selected]

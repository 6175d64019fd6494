"""Activation checkpointing: same gradients (dropout replayed), recomputation present, layer selection."""

import pathlib
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from toy_dual_encoder import build_toy_dual_encoder  # noqa: E402
from toy_dual_encoder import toy_examples  # noqa: E402

from florence_keras.training import enable_activation_checkpointing  # noqa: E402
from florence_keras.training import find_blocks  # noqa: E402
from florence_keras.training import full_batch_gradients  # noqa: E402


def _build(policy="float32", dropout=0.3):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(1)
        return build_toy_dual_encoder(dropout=dropout)
    finally:
        keras.config.set_dtype_policy(previous)


def _batch():
    images, tokens, labels = toy_examples(8)
    return {"images": tf.constant(images), "token_ids": tf.constant(tokens), "labels": tf.constant(labels)}


def _step(model, batch):
    function = tf.function(lambda b: full_batch_gradients(model, b))
    loss, grads = function(batch)
    graph = function.get_concrete_function(batch).graph
    return (
        float(loss),
        [tf.convert_to_tensor(g).numpy() for g in grads],
        [tf.convert_to_tensor(v).numpy() for v in model.non_trainable_variables],
        graph,
    )


def _matmuls(graph):
    """Number of matmul nodes in the step's graph and the functions it calls."""
    graph_def = graph.as_graph_def()
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes.extend(function.node_def)
    return sum(node.op in ("MatMul", "BatchMatMulV2") for node in nodes)


def _run_pair(policy):
    batch = _batch()
    plain = _step(_build(policy), batch)
    model = _build(policy)
    assert enable_activation_checkpointing(model) == ["image_block", "text_block"]
    return plain, _step(model, batch)


def test_gradients_identical_with_dropout_float32():
    plain, remat = _run_pair("float32")
    assert plain[0] == remat[0]
    for a, b in zip(plain[1], remat[1]):
        np.testing.assert_array_equal(a, b)
    # The dropout seed state ends where a single forward pass leaves it.
    for a, b in zip(plain[2], remat[2]):
        np.testing.assert_array_equal(a, b)
    # The backward pass recomputes the blocks' matmuls.
    assert _matmuls(remat[3]) > _matmuls(plain[3])


def test_gradients_identical_with_dropout_mixed_bfloat16():
    # Grappler fuses the kept-for-backward forward ops differently from the recomputed ones, which
    # changes bfloat16 rounding; without graph rewrites both give the same bits.
    previous = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        plain, remat = _run_pair("mixed_bfloat16")
    finally:
        tf.config.optimizer.set_experimental_options(
            {"disable_meta_optimizer": previous.get("disable_meta_optimizer", False)}
        )
    assert plain[0] == remat[0]
    for a, b in zip(plain[1], remat[1]):
        np.testing.assert_array_equal(a, b)


def test_layer_selection():
    model = _build()
    assert [layer.name for layer in find_blocks(model)] == ["image_block", "text_block"]
    assert enable_activation_checkpointing(model, ["text_block"]) == ["text_block"]
    assert enable_activation_checkpointing(model, lambda layer: layer.name == "image_projection") == [
        "image_projection"
    ]
    with pytest.raises(ValueError, match="missing_block"):
        enable_activation_checkpointing(model, ["missing_block"])
    # Wrapping twice is a no-op; the model still runs eagerly.
    enable_activation_checkpointing(model)
    outputs = model({"images": np.zeros((2, 16, 16, 3), "float32"), "token_ids": np.zeros((2, 77), "int32")})
    assert tuple(outputs["image_embeddings"].shape) == (2, 8)

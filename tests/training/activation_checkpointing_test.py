"""Activation checkpointing on florence_mini: the same gradients bit for bit (DropPath masks replayed, CoSwin's fused
LayerNorm / GELU gradients recomputed), the recomputation present in the graph, and layer selection."""

import pathlib
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from florence_mini_run import IMAGE_SIZE  # noqa: E402
from florence_mini_run import build_task  # noqa: E402

from florence_keras.models.presets import ARCHITECTURE_PRESETS  # noqa: E402
from florence_keras.training import enable_activation_checkpointing  # noqa: E402
from florence_keras.training import find_blocks  # noqa: E402
from florence_keras.training import full_batch_gradients  # noqa: E402

def _florence_mini_blocks():
    """find_blocks on florence_mini, from its architecture preset: the CoSwin stem, each stage's patch-merging
    embedding (after the first) and blocks, then the text tower's embedding and blocks."""
    config = ARCHITECTURE_PRESETS["florence_mini"]
    names = ["stem"]
    for stage, depth in enumerate(config["image_encoder"]["depths"]):
        names += ([f"stage_{stage}_embedding"] if stage else []) + [f"stage_{stage}_block_{i}" for i in range(depth)]
    return names + ["embedding"] + [f"block_{i}" for i in range(config["text_encoder"]["num_layers"])]


FLORENCE_MINI_BLOCKS = _florence_mini_blocks()


def _build(policy="float32", drop_path_rate=0.1):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(1)
        return build_task(drop_path_rate=drop_path_rate)
    finally:
        keras.config.set_dtype_policy(previous)


def _batch():
    rng = np.random.default_rng(0)
    return {
        "images": tf.constant(rng.normal(size=(4, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")),
        "token_ids": tf.constant(rng.integers(1, 49407, size=(4, 77)).astype("int32")),
        "labels": tf.constant([0, 1, 1, 2], tf.int64),
    }


def _step(task, batch):
    function = tf.function(lambda b: full_batch_gradients(task, b))
    loss, grads = function(batch)
    graph = function.get_concrete_function(batch).graph
    return (
        float(loss),
        [tf.convert_to_tensor(g).numpy() for g in grads],
        [tf.convert_to_tensor(v).numpy() for v in task.non_trainable_variables],
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
    task = _build(policy)
    assert enable_activation_checkpointing(task) == FLORENCE_MINI_BLOCKS
    return plain, _step(task, batch)


def test_gradients_identical_with_drop_path_float32():
    plain, remat = _run_pair("float32")
    assert plain[0] == remat[0]
    for a, b in zip(plain[1], remat[1]):
        np.testing.assert_array_equal(a, b)
    # The DropPath seed states end where a single forward pass leaves them.
    for a, b in zip(plain[2], remat[2]):
        np.testing.assert_array_equal(a, b)
    # The backward pass recomputes the blocks' matmuls.
    assert _matmuls(remat[3]) > _matmuls(plain[3])


def test_drop_path_is_active():
    # Sanity for the test above: another draw of the DropPath masks changes the gradient.
    task, batch = _build(), _batch()
    function = tf.function(lambda b: full_batch_gradients(task, b))
    first = [tf.convert_to_tensor(g).numpy() for g in function(batch)[1]]
    second = [tf.convert_to_tensor(g).numpy() for g in function(batch)[1]]
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(first, second)) > 1e-3


def test_gradients_identical_with_drop_path_mixed_bfloat16():
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
    task = _build()
    assert [layer.name for layer in find_blocks(task)] == FLORENCE_MINI_BLOCKS
    assert enable_activation_checkpointing(task, ["block_1"]) == ["block_1"]
    assert enable_activation_checkpointing(task, lambda layer: layer.name == "stage_2_block_1") == [
        "stage_2_block_1"
    ]
    with pytest.raises(ValueError, match="missing_block"):
        enable_activation_checkpointing(task, ["missing_block"])
    # Wrapping twice is a no-op; the model still runs eagerly.
    enable_activation_checkpointing(task)
    embeddings = task.embed({"images": np.zeros((2, IMAGE_SIZE, IMAGE_SIZE, 3), "float32"),
                             "token_ids": np.zeros((2, 77), "int32")})
    assert tuple(embeddings["image_embeddings"].shape) == (2, 64)

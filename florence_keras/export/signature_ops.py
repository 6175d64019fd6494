"""Which TensorFlow ops a SavedModel signature runs, read from `saved_model.pb` without loading it.

Imports only TensorFlow, so a process without TF-Text (like a stock model server) can check that a
signature needs nothing it lacks: `unregistered_op_types(signature_op_types(dir, name))` must be empty.
"""

import os

from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry


def _read_meta_graph(export_dir, tag="serve"):
    path = os.path.join(export_dir, "saved_model.pb")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No saved_model.pb in {export_dir!r}.")
    saved_model = saved_model_pb2.SavedModel()
    with open(path, "rb") as file:
        saved_model.ParseFromString(file.read())
    for meta_graph in saved_model.meta_graphs:
        if tag in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ValueError(f"{export_dir!r} has no meta graph tagged {tag!r}.")


def _attr_functions(node):
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func.name
        for function in value.list.func:
            yield function.name


def signature_names(export_dir):
    """The serving signature names of a SavedModel (without internal ones such as `__saved_model_init_op`)."""
    return sorted(name for name in _read_meta_graph(export_dir).signature_def if not name.startswith("__"))


def signature_op_types(export_dir, signature_name):
    """The op types a signature can execute: its nodes and every function they call, transitively.

    Args:
        export_dir: a SavedModel directory.
        signature_name: a key of its `signature_def`.

    Returns:
        sorted list of op type names (e.g. `"DecodeImage"`, `"RegexSplitWithOffsets"`).
    """
    meta_graph = _read_meta_graph(export_dir)
    if signature_name not in meta_graph.signature_def:
        raise ValueError(
            f"No signature {signature_name!r} in {export_dir!r}. "
            f"Available: {sorted(meta_graph.signature_def)}"
        )
    graph = meta_graph.graph_def
    nodes = {node.name: node for node in graph.node}
    functions = {function.signature.name: function for function in graph.library.function}
    outputs = meta_graph.signature_def[signature_name].outputs.values()
    pending_nodes = [tensor.name.split(":")[0] for tensor in outputs]
    seen_nodes, seen_functions, op_types = set(), set(), set()
    pending_functions = []
    while pending_nodes or pending_functions:
        while pending_nodes:
            name = pending_nodes.pop()
            if name in seen_nodes or name not in nodes:
                continue
            seen_nodes.add(name)
            node = nodes[name]
            op_types.add(node.op)
            pending_functions.extend(_attr_functions(node))
            if node.op in functions:
                pending_functions.append(node.op)
            pending_nodes.extend(inp.lstrip("^").split(":")[0] for inp in node.input)
        while pending_functions:
            name = pending_functions.pop()
            if name in seen_functions or name not in functions:
                continue
            seen_functions.add(name)
            for node in functions[name].node_def:
                if node.op in functions:
                    pending_functions.append(node.op)
                else:
                    op_types.add(node.op)
                pending_functions.extend(_attr_functions(node))
    return sorted(op_types - set(functions))


def unregistered_op_types(op_types):
    """The op types not registered in this process (e.g. TF-Text ops when `tensorflow_text` is not imported)."""
    return sorted(op for op in op_types if op_def_registry.get(op) is None)

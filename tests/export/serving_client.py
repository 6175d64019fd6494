"""Stand-in for a model server: runs requests against a SavedModel in a process with only TensorFlow.

Used by the export tests through a subprocess, so that nothing from florence_keras, Keras or keras-hub is
in memory — the situation of TF Serving. With `--scan_dir` it first lists each signature's op types with
`florence_keras/export/signature_ops.py` (loaded by file path; it imports only TensorFlow) and which of
them stock TensorFlow lacks; only then, with `--tensorflow_text`, it imports `tensorflow_text` (for the
string signature) and loads the model.

    python serving_client.py --export_dir=DIR --plan=PLAN.json --out=OUT_DIR [--tensorflow_text]
        [--scan_dir=DIR]

PLAN.json: `[{"id": str, "signature": str, "inputs": {name: {"npy": path} | {"b64": [...], "shape": [...]}}}]`.
Writes OUT_DIR/results.json (load status, signature specs, per-call errors, op scans, loaded modules) and
OUT_DIR/<id>.npz with each successful call's outputs.
"""

import argparse
import base64
import importlib.util
import json
import os
import sys

import numpy as np
import tensorflow as tf

# `import tensorflow` itself loads a few `keras.src` modules (its lazy `tf.keras` hook); anything beyond those
# — and anything from florence_keras / keras-hub — would mean the client depends on more than TensorFlow.
_KERAS_AFTER_IMPORTING_TENSORFLOW = {name for name in sys.modules if name.split(".")[0] in ("keras", "tf_keras")}

_SIGNATURE_OPS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "florence_keras", "export", "signature_ops.py",
)


def _load_signature_ops():
    spec = importlib.util.spec_from_file_location("signature_ops", _SIGNATURE_OPS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _input(value):
    if "npy" in value:
        return tf.constant(np.load(value["npy"]))
    items = [base64.b64decode(item) for item in value["b64"]]
    return tf.reshape(tf.constant(items, dtype=tf.string), value["shape"])


def _spec(spec):
    return {"dtype": spec.dtype.name, "shape": spec.shape.as_list() if spec.shape.rank is not None else None}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--export_dir", required=True)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--tensorflow_text", action="store_true")
    parser.add_argument("--scan_dir", default=None)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    results = {"calls": {}, "ops": {}, "unregistered_ops": {}}

    if args.scan_dir:
        signature_ops = _load_signature_ops()
        for name in signature_ops.signature_names(args.scan_dir):
            ops = signature_ops.signature_op_types(args.scan_dir, name)
            results["ops"][name] = ops
            results["unregistered_ops"][name] = signature_ops.unregistered_op_types(ops)
    # Scan first: the registry then holds stock TensorFlow's ops only, as in a server without TF-Text.
    if args.tensorflow_text:
        import tensorflow_text  # noqa: F401  (registers the TF-Text ops)

    try:
        loaded = tf.saved_model.load(args.export_dir)
    except (RuntimeError, ValueError, tf.errors.OpError) as error:
        results["load_error"] = f"{type(error).__name__}: {error}"
        loaded = None
    if loaded is not None:
        results["signatures"] = {
            name: {
                "inputs": {k: _spec(v) for k, v in function.structured_input_signature[1].items()},
                "outputs": {k: _spec(v) for k, v in function.structured_outputs.items()},
            }
            for name, function in loaded.signatures.items()
        }
        with open(args.plan, encoding="utf-8") as file:
            plan = json.load(file)
        for call in plan:
            inputs = {name: _input(value) for name, value in call["inputs"].items()}
            try:
                outputs = loaded.signatures[call["signature"]](**inputs)
            except tf.errors.OpError as error:
                results["calls"][call["id"]] = {"error": type(error).__name__, "message": error.message}
                continue
            arrays = {k: np.asarray(v.numpy()) for k, v in outputs.items()}  # a scalar string is bytes
            arrays = {k: v.astype(bytes) if v.dtype == object else v for k, v in arrays.items()}  # no pickles
            np.savez(os.path.join(args.out, call["id"] + ".npz"), **arrays)
            results["calls"][call["id"]] = {"ok": True}
    results["modules"] = sorted(
        name for name in sys.modules
        if name.split(".")[0] in ("keras", "keras_hub", "keras_nlp", "florence_keras", "tf_keras")
        and name not in _KERAS_AFTER_IMPORTING_TENSORFLOW
    )
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as file:
        json.dump(results, file, indent=1)


if __name__ == "__main__":
    main()

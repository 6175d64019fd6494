"""TF Serving REST `:predict` request/response examples, produced by running an exported model.

The examples in docs/serving.md come from `rest_examples_markdown(export_dir)`: each warm-up request of the
export is run through the loaded SavedModel's signature and both sides are written in TF Serving's REST
"row" format (`{"signature_name": ..., "instances": [...]}` -> `{"predictions": [...]}`): a single input
or output is listed bare, several are objects keyed by name, and binary strings travel as
`{"b64": "..."}` (TF Serving decodes those in requests, and base64-encodes outputs whose name ends in
`_bytes`). Keys are sorted so that the examples are reproducible.
"""

import base64
import json

import numpy as np
import tensorflow as tf

from florence_keras.export import warmup_requests


def _json_value(value, name, decimals):
    if isinstance(value, np.ndarray):
        return [_json_value(item, name, decimals) for item in value]
    if isinstance(value, (bytes, np.bytes_)):
        if name.endswith("_bytes"):
            return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
        return bytes(value).decode("utf-8")
    if isinstance(value, (float, np.floating)):
        return round(float(value), decimals)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    raise ValueError(f"Cannot write {name!r} value of type {type(value).__name__} as JSON.")


def _rows(tensors, decimals):
    tensors = {name: np.asarray(value) for name, value in sorted(tensors.items())}  # stable key order
    sizes = {name: value.shape[0] if value.ndim else None for name, value in tensors.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise ValueError(f"Row format needs one shared batch size. Received: {sizes}")
    batch = next(iter(sizes.values()))
    rows = []
    for index in range(batch):
        row = {name: _json_value(value[index], name, decimals) for name, value in tensors.items()}
        rows.append(next(iter(row.values())) if len(row) == 1 else row)
    return rows


def rest_predict_example(signature_name, inputs, outputs, decimals=6):
    """The REST request and response bodies of one `:predict` call, in row format.

    Args:
        signature_name: str.
        inputs: dict `{name: numpy array}` with a leading batch axis.
        outputs: dict `{name: numpy array}` with the same batch size.
        decimals: floats are rounded to this many decimals (TF Serving sends full precision).

    Returns:
        `(request, response)` JSON-serialisable dicts.

    Example:
    >>> rest_predict_example("encode_texts", {"texts": np.array([b"a cat"])},
    ...                      {"embeddings": np.array([[0.6, 0.8]])})
    ({'signature_name': 'encode_texts', 'instances': ['a cat']}, {'predictions': [[0.6, 0.8]]})
    """
    request = {"signature_name": signature_name, "instances": _rows(inputs, decimals)}
    return request, {"predictions": _rows(outputs, decimals)}


def _format_json(body):
    """Pretty JSON with one instance per line."""
    lines = ["{"]
    items = list(body.items())
    for position, (key, value) in enumerate(items):
        comma = "," if position < len(items) - 1 else ""
        if isinstance(value, list):
            lines.append(f'  "{key}": [')
            for index, row in enumerate(value):
                row_comma = "," if index < len(value) - 1 else ""
                lines.append(f"    {json.dumps(row, ensure_ascii=False)}{row_comma}")
            lines.append(f"  ]{comma}")
        else:
            lines.append(f'  "{key}": {json.dumps(value)}{comma}')
    lines.append("}")
    return "\n".join(lines)


def rest_examples_markdown(export_dir, model_name="florence", port=8501, decimals=6):
    """Markdown with one `curl` request and its actual response per warm-up request of `export_dir`.

    Loads the SavedModel (importing `tensorflow_text` for TF-Text ops), runs every warm-up request through
    its signature, and formats the bodies with `rest_predict_example`.

    Args:
        export_dir: a version directory written by `SavedModelExporter`.
        model_name: the served name in the URL.
        port: TF Serving's REST port.
        decimals: rounding of floats in the responses.

    Returns:
        str (markdown).
    """
    import tensorflow_text  # noqa: F401  (registers TF-Text ops, needed to load the string signature)

    loaded = tf.saved_model.load(export_dir)
    sections = []
    for request in warmup_requests.read_warmup_requests(export_dir):
        name = request.model_spec.signature_name
        inputs = warmup_requests.request_inputs(request)
        outputs = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
        body, response = rest_predict_example(
            name, inputs, {k: v.numpy() for k, v in outputs.items()}, decimals=decimals
        )
        sections.append(
            f"### `{name}`\n\n```bash\ncurl -s -X POST http://localhost:{port}/v1/models/{model_name}:predict "
            f"\\\n  -d @- <<'EOF'\n{_format_json(body)}\nEOF\n```\n\nResponse:\n\n```json\n"
            f"{_format_json(response)}\n```\n"
        )
    return "\n".join(sections)

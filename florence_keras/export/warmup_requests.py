"""TF Serving warm-up records: `assets.extra/tf_serving_warmup_requests` of real `PredictRequest`s.

TF Serving replays these records when it loads a version, before it serves traffic, so the first client
does not pay for graph initialisation. A record that fails makes the whole version fail to load, so every
record must be a valid request (the export tests replay them).
"""

import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

WARMUP_DIRECTORY = "assets.extra"
WARMUP_FILENAME = "tf_serving_warmup_requests"


def warmup_path(export_dir):
    """`export_dir/assets.extra/tf_serving_warmup_requests`."""
    return os.path.join(export_dir, WARMUP_DIRECTORY, WARMUP_FILENAME)


def make_predict_request(model_name, signature_name, inputs):
    """A `tensorflow.serving.PredictRequest` for `signature_name` with numpy `inputs`.

    Args:
        model_name: str, the served model's name (`--model_name` of the server).
        signature_name: str.
        inputs: dict `{input_name: array}`; string inputs as arrays of `bytes`/`str`.

    Returns:
        a `predict_pb2.PredictRequest`.

    Example:
    >>> request = make_predict_request("florence", "encode_texts", {"texts": np.array([b"a cat"])})
    >>> request.model_spec.signature_name, list(request.inputs)
    ('encode_texts', ['texts'])
    """
    if not inputs:
        raise ValueError(f"`inputs` is empty for signature {signature_name!r}.")
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
    )
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    return request


def request_inputs(request):
    """The inputs of a `PredictRequest` as a dict of numpy arrays (strings as `bytes` objects)."""
    return {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}


def write_warmup_requests(export_dir, requests):
    """Writes `requests` (list of `PredictRequest`) as TF Serving's warm-up file of `export_dir`.

    Returns:
        the path written.
    """
    if not requests:
        raise ValueError("`requests` is empty; TF Serving warm-up needs at least one request.")
    path = warmup_path(export_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(export_dir):
    """The `PredictRequest`s of `export_dir`'s warm-up file, in order."""
    path = warmup_path(export_dir)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No warm-up file at {path}.")
    requests = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"{path}: expected predict_log records. Received: {log.WhichOneof('log_type')}")
        requests.append(log.predict_log.request)
    return requests

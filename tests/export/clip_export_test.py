"""End-to-end export test: a tiny FlorenceCLIP exported once, served by a TensorFlow-only subprocess.

The subprocess (tests/export/serving_client.py) imports TensorFlow (plus tensorflow_text for the string
signature) and nothing from florence_keras / Keras, like TF Serving. Every signature is compared with the
Keras model on scikit-image photos (several sizes; JPEG and PNG; grayscale and RGBA), the warm-up records
are replayed, bad requests must fail with clear InvalidArgument errors while the process keeps serving,
and the op types of each signature are checked against stock TensorFlow's registry (before that process
imports tensorflow_text). `saved_model_cli show --all` runs alongside.
"""

import base64
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage import data

from florence_keras import export

ATOL = 1e-4
CLASS_NAMES = ["astronaut", "cat", "coffee", "cameraman", "rocket"]
TEMPLATES = ("a photo of a {}.", "a drawing of a {}.")
TOP_K = 3
TEXTS = [
    "a photo of a cat.",
    "A Red CIRCLE",
    "Ünïcödé naïve café – 東京 🚀",
    "",
    "  multiple   spaces\tand\nnewlines ",
    " ".join(f"word{i} and more" for i in range(40)),  # > 75 BPE tokens: truncated
]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = os.path.join(REPO, "tests", "export", "serving_client.py")
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


def _encode(array, fmt):
    buffer = io.BytesIO()
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    options = {"quality": 90} if fmt == "JPEG" else {}
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def _test_images():
    """(name, uint8 array HxWxC) of several sizes: RGB, grayscale (1 channel) and RGBA."""
    astronaut, chelsea = data.astronaut(), data.chelsea()
    alpha = np.linspace(0, 255, chelsea.shape[1], dtype=np.uint8)[None, :, None]
    rgba = np.concatenate([chelsea, np.broadcast_to(alpha, chelsea.shape[:2] + (1,))], axis=-1)
    return [
        ("astronaut", astronaut),                  # 512x512
        ("camera", data.camera()[..., None]),      # 512x512 gray
        ("coffee", data.coffee()),                 # 400x600
        ("chelsea", chelsea),                      # 300x451
        ("rgba", rgba[::2, ::3]),                  # 150x151 RGBA
        ("crop", np.ascontiguousarray(astronaut[40:137, 200:331])),  # 97x131
    ]


def _encoded_images():
    """(name, bytes, decoded uint8 reference HxWxC): PNG of every image, JPEG of the non-RGBA ones.

    PNG references come from PIL (an independent, lossless decoder). JPEG decoders are not bit-exact across
    libraries (PIL and TensorFlow's differ by up to ~7 levels here), so the JPEG references are decoded by
    `tf.io.decode_jpeg`, the decoder the served graph (and the training pipeline) use.
    """
    items = []
    for name, array in _test_images():
        png = _encode(array, "PNG")
        decoded = np.asarray(Image.open(io.BytesIO(png)))
        items.append((f"{name}.png", png, decoded.reshape(array.shape)))
        if array.shape[-1] != 4:
            jpeg = _encode(array, "JPEG")
            items.append((f"{name}.jpg", jpeg, tf.io.decode_jpeg(jpeg).numpy()))
    return items


class _Plan:
    """Requests for the serving client: numeric inputs as .npy files, strings as base64 lists."""

    def __init__(self, directory):
        self.directory = directory
        self.calls = []

    def add(self, call_id, signature, **inputs):
        encoded = {}
        for name, value in inputs.items():
            value = np.asarray(value)
            if value.dtype == object or value.dtype.kind in "SU":
                items = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in value.reshape(-1)]
                encoded[name] = {"b64": [base64.b64encode(v).decode("ascii") for v in items],
                                 "shape": list(value.shape)}
            else:
                path = os.path.join(self.directory, f"{call_id}_{name}.npy")
                np.save(path, value)
                encoded[name] = {"npy": path}
        self.calls.append({"id": call_id, "signature": signature, "inputs": encoded})

    def write(self):
        path = os.path.join(self.directory, "plan.json")
        with open(path, "w", encoding="utf-8") as file:
            json.dump(self.calls, file)
        return path


def _start_client(export_dir, plan_path, out_dir, tensorflow_text, scan_dir=None):
    command = [sys.executable, CLIENT, f"--export_dir={export_dir}", f"--plan={plan_path}", f"--out={out_dir}"]
    if tensorflow_text:
        command.append("--tensorflow_text")
    if scan_dir:
        command.append(f"--scan_dir={scan_dir}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    os.makedirs(out_dir, exist_ok=True)
    log = open(os.path.join(out_dir, "log.txt"), "w", encoding="utf-8")  # a file: a full pipe would block
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True), log


def _finish(started, out_dir):
    process, log = started
    process.wait(timeout=300)
    log.close()
    with open(os.path.join(out_dir, "log.txt"), encoding="utf-8") as file:
        output = file.read()
    assert process.returncode == 0, output[-3000:]
    with open(os.path.join(out_dir, "results.json"), encoding="utf-8") as file:
        return json.load(file)


def _packed_text_ids(tokenizer, texts, pad_value):
    ids = [[int(i) for i in np.asarray(tokenizer(text))] for text in texts]
    width = max(len(row) for row in ids)
    padded = np.full((len(ids), width), pad_value, np.int32)
    for row, values in enumerate(ids):
        padded[row, : len(values)] = values
    return padded, np.array([len(row) for row in ids], np.int32)


def _reference_classify(clip, images):
    """Zero-shot top-k computed here with numpy: prompt-ensembled class weights, softmax(scale * cos)."""
    weights = []
    for name in CLASS_NAMES:
        embeddings = np.asarray(clip.encode_texts([t.format(name) for t in TEMPLATES]), np.float64)
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
        mean = embeddings.mean(axis=0)
        weights.append(mean / np.linalg.norm(mean))
    image_embeddings = np.asarray(clip.encode_images(images), np.float64)
    logits = float(clip.backbone.logit_scale()) * image_embeddings @ np.stack(weights).T
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    order = np.argsort(-logits, axis=1, kind="stable")[:, :TOP_K]
    return order, np.take_along_axis(probabilities, order, axis=1), logits


@pytest.fixture(scope="module")
def served(tiny_clip, tmp_path_factory):
    """Exports once, runs every request in TensorFlow-only subprocesses, computes Keras references."""
    clip = tiny_clip
    root = tmp_path_factory.mktemp("clip_export")
    signatures = export.clip_signatures(clip, CLASS_NAMES, TEMPLATES, top_k=TOP_K)
    exporter = export.SavedModelExporter(signatures, serving_default=export.CLIP_SERVING_DEFAULT)
    export_dir = exporter.export(str(root / "models"), version=3)

    plan = _Plan(str(root))
    images = _encoded_images()
    image_bytes = np.array([item[1] for item in images], dtype=object)
    plan.add("image_bytes", "encode_image_bytes", image_bytes=image_bytes)
    plan.add("serving_default", "serving_default", image_bytes=image_bytes[:3])
    plan.add("classify", "classify", image_bytes=image_bytes)
    astronaut, camera = data.astronaut(), data.camera()[..., None]
    rgba = _test_images()[4][1]
    image_batches = {
        "images_rgb": np.stack([astronaut, astronaut[::-1, ::-1]]),
        "images_gray": camera[None, 100:400, :300],
        "images_rgba": rgba[None],
        "images_gray_alpha": rgba[None, ..., ::3][..., :2],
    }
    for call_id, batch in image_batches.items():
        plan.add(call_id, "encode_images", images=batch)
    plan.add("texts", "encode_texts", texts=np.array(TEXTS, dtype=object))
    token_ids, lengths = _packed_text_ids(clip.preprocessor.tokenizer, TEXTS, pad_value=7)
    plan.add("token_ids", "encode_token_ids", token_ids=token_ids, lengths=lengths)
    wide = np.concatenate([token_ids, np.zeros((len(TEXTS), 90), np.int32)], axis=1)
    plan.add("token_ids_wide", "encode_token_ids", token_ids=wide, lengths=lengths)

    requests = export.read_warmup_requests(export_dir)
    for request in requests:
        plan.add(f"warmup_{request.model_spec.signature_name}", request.model_spec.signature_name,
                 **export.request_inputs(request))

    png = images[0][1]
    jpeg = images[1][1]
    bomb = bytearray(_encode(np.zeros((2, 2, 3), np.uint8), "PNG"))
    bomb[16:24] = (100_000).to_bytes(4, "big") * 2  # IHDR claims 100000 x 100000
    bad = {
        "bad_garbage": ("encode_image_bytes", {"image_bytes": np.array([png, b"not an image at all"], object)}),
        "bad_empty_string": ("classify", {"image_bytes": np.array([b""], object)}),
        "bad_truncated_jpeg": ("encode_image_bytes", {"image_bytes": np.array([jpeg[: len(jpeg) // 3]], object)}),
        "bad_bomb": ("encode_image_bytes", {"image_bytes": np.array([bytes(bomb)], object)}),
        "bad_empty_bytes_batch": ("encode_image_bytes", {"image_bytes": np.zeros([0], object)}),
        "bad_empty_classify_batch": ("classify", {"image_bytes": np.zeros([0], object)}),
        "bad_empty_images": ("encode_images", {"images": np.zeros([0, 8, 8, 3], np.uint8)}),
        "bad_five_channels": ("encode_images", {"images": np.zeros([1, 8, 8, 5], np.uint8)}),
        "bad_empty_texts": ("encode_texts", {"texts": np.zeros([0], object)}),
        "bad_empty_token_ids": ("encode_token_ids", {"token_ids": np.zeros([0, 0], np.int32),
                                                     "lengths": np.zeros([0], np.int32)}),
        "bad_start_token": ("encode_token_ids", {"token_ids": np.array([[49406, 320, 1125]], np.int32),
                                                 "lengths": np.array([3], np.int32)}),
        "bad_id_range": ("encode_token_ids", {"token_ids": np.array([[320, 60000]], np.int32),
                                              "lengths": np.array([2], np.int32)}),
        "bad_length": ("encode_token_ids", {"token_ids": np.array([[320, 1125]], np.int32),
                                            "lengths": np.array([3], np.int32)}),
        "bad_length_count": ("encode_token_ids", {"token_ids": np.array([[320, 1125]], np.int32),
                                                  "lengths": np.array([2, 1], np.int32)}),
    }
    for call_id, (signature, inputs) in bad.items():
        plan.add(call_id, signature, **inputs)
    plan.add("good_after_errors", "encode_image_bytes", image_bytes=image_bytes[:1])
    plan_path = plan.write()

    full_out = str(root / "full_out")
    client = _start_client(export_dir, plan_path, full_out, tensorflow_text=True, scan_dir=export_dir)
    cli_log = str(root / "saved_model_cli.txt")
    with open(cli_log, "w", encoding="utf-8") as log:
        cli = subprocess.Popen([SAVED_MODEL_CLI, "show", "--dir", export_dir, "--all"], stdout=log,
                               stderr=subprocess.STDOUT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))

    references = {
        "image_bytes": clip.encode_images([item[2] for item in images]),
        "texts": clip.encode_texts(TEXTS),
        "token_ids_keras_packed": clip.encode_texts(clip.preprocessor.tokenize(tf.constant(TEXTS))),
        "classify": _reference_classify(clip, [item[2] for item in images]),
    }
    for call_id, batch in image_batches.items():
        references[call_id] = clip.encode_images(batch)
    references = {k: tuple(np.asarray(x) for x in v) if isinstance(v, tuple) else np.asarray(v)
                  for k, v in references.items()}

    def outputs(call_id):
        with np.load(os.path.join(full_out, call_id + ".npz")) as file:
            return {key: file[key] for key in file.files}

    cli.wait(timeout=300)
    with open(cli_log, encoding="utf-8") as file:
        cli_output = file.read()
    return {
        "export_dir": export_dir,
        "exporter": exporter,
        "signatures": signatures,
        "images": images,
        "requests": requests,
        "bad": bad,
        "references": references,
        "full": _finish(client, full_out),
        "saved_model_cli": (cli.returncode, cli_output),
        "outputs": outputs,
    }


def _max_diff(actual, expected):
    return float(np.max(np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))))


def test_server_process_imports_only_tensorflow(served):
    assert served["full"]["modules"] == []
    assert "load_error" not in served["full"]


def test_signature_specs(served):
    signatures = served["full"]["signatures"]
    assert sorted(signatures) == sorted(
        ["serving_default", "encode_image_bytes", "encode_images", "encode_texts", "encode_token_ids", "classify"]
    )
    assert signatures["serving_default"] == signatures["encode_image_bytes"]
    assert signatures["encode_image_bytes"]["inputs"] == {"image_bytes": {"dtype": "string", "shape": [None]}}
    assert signatures["encode_images"]["inputs"] == {"images": {"dtype": "uint8", "shape": [None] * 4}}
    assert signatures["encode_token_ids"]["inputs"] == {
        "token_ids": {"dtype": "int32", "shape": [None, None]}, "lengths": {"dtype": "int32", "shape": [None]}
    }
    for name in ("encode_image_bytes", "encode_images", "encode_texts", "encode_token_ids"):
        assert signatures[name]["outputs"] == {"embeddings": {"dtype": "float32", "shape": [None, 16]}}
    assert signatures["classify"]["outputs"] == {
        "class_names": {"dtype": "string", "shape": [None, TOP_K]},
        "class_ids": {"dtype": "int32", "shape": [None, TOP_K]},
        "scores": {"dtype": "float32", "shape": [None, TOP_K]},
    }


def test_encode_image_bytes_matches_keras(served):
    assert served["full"]["calls"]["image_bytes"] == {"ok": True}
    embeddings = served["outputs"]("image_bytes")["embeddings"]
    expected = served["references"]["image_bytes"]
    assert embeddings.shape == expected.shape == (len(served["images"]), 16)
    per_image = np.abs(embeddings - expected).max(axis=1)
    assert per_image.max() < ATOL, dict(zip([item[0] for item in served["images"]], per_image))
    default = served["outputs"]("serving_default")["embeddings"]
    assert _max_diff(default, expected[:3]) < ATOL


def test_png_decoding_matches_pil(served):
    """The graph decodes PNG (gray, RGBA) like PIL + the Keras converter: checked through the embeddings
    above; here the reference pixels themselves are checked against TensorFlow's decoder."""
    for name, encoded, reference in served["images"]:
        if name.endswith(".png"):
            np.testing.assert_array_equal(tf.io.decode_png(encoded).numpy().reshape(reference.shape), reference)


def test_encode_images_matches_keras(served):
    for call_id in ("images_rgb", "images_gray", "images_rgba", "images_gray_alpha"):
        assert served["full"]["calls"][call_id] == {"ok": True}, call_id
        assert _max_diff(served["outputs"](call_id)["embeddings"], served["references"][call_id]) < ATOL, call_id


def test_encode_texts_matches_keras(served):
    assert _max_diff(served["outputs"]("texts")["embeddings"], served["references"]["texts"]) < ATOL


def test_encode_token_ids_matches_keras(served):
    for call_id in ("token_ids", "token_ids_wide"):
        embeddings = served["outputs"](call_id)["embeddings"]
        assert _max_diff(embeddings, served["references"]["texts"]) < ATOL, call_id
        assert _max_diff(embeddings, served["references"]["token_ids_keras_packed"]) < ATOL, call_id


def test_classify_matches_keras(served):
    outputs = served["outputs"]("classify")
    order, probabilities, logits = served["references"]["classify"]
    sorted_logits = -np.sort(-logits, axis=1)
    distinct = np.all(np.diff(sorted_logits[:, : TOP_K + 1], axis=1) < -1e-3, axis=1)
    np.testing.assert_array_equal(outputs["class_ids"][distinct], order[distinct])
    names = np.array(CLASS_NAMES)[outputs["class_ids"]]
    np.testing.assert_array_equal(outputs["class_names"].astype(str), names)
    assert _max_diff(outputs["scores"], probabilities) < ATOL
    assert np.all(np.diff(outputs["scores"], axis=1) <= 0)


def test_warmup_records_replay(served):
    requests = served["requests"]
    assert [r.model_spec.signature_name for r in requests] == served["exporter"].signature_names
    assert {r.model_spec.name for r in requests} == {"florence"}
    calls = served["full"]["calls"]
    for request in requests:
        name = request.model_spec.signature_name
        assert calls[f"warmup_{name}"] == {"ok": True}, calls[f"warmup_{name}"]
        batch = next(iter(export.request_inputs(request).values())).shape[0]
        for value in served["outputs"](f"warmup_{name}").values():
            assert value.shape[0] == batch


EXPECTED_ERRORS = {
    "bad_garbage": "encode_image_bytes: image_bytes[1] (19 bytes) was refused: not a JPEG, PNG",
    "bad_empty_string": "classify: image_bytes[0] (0 bytes) was refused: empty bytes",
    "bad_truncated_jpeg": "jpeg",
    "bad_bomb": "max_image_pixels",
    "bad_empty_bytes_batch": "encode_image_bytes: `image_bytes` is an empty batch",
    "bad_empty_classify_batch": "classify: `image_bytes` is an empty batch",
    "bad_empty_images": "encode_images: `images` is an empty batch",
    "bad_five_channels": "encode_images: images need 1, 2, 3 or 4 channels; received 5",
    "bad_empty_texts": "encode_texts: `texts` is an empty batch",
    "bad_empty_token_ids": "encode_token_ids: `token_ids` is an empty batch",
    "bad_start_token": "without the special tokens [49406, 49407] (the signature adds them); received [49406]",
    "bad_id_range": "received [60000]",
    "bad_length": "each `lengths[b]` must be <= the width of `token_ids`",
    "bad_length_count": "`lengths` needs one entry per row of `token_ids`",
}


def test_bad_requests_give_clear_errors_and_the_server_keeps_serving(served):
    calls = served["full"]["calls"]
    assert set(EXPECTED_ERRORS) == set(served["bad"])
    for call_id, expected in EXPECTED_ERRORS.items():
        result = calls[call_id]
        assert result.get("error") == "InvalidArgumentError", (call_id, result)
        assert expected.lower() in result["message"].lower(), (call_id, result["message"][:500])
    assert calls["good_after_errors"] == {"ok": True}


def test_token_id_signatures_need_only_stock_tensorflow_ops(served):
    """Op types of each signature vs the op registry of a process that has not imported tensorflow_text."""
    scan = served["full"]
    for name in ("serving_default", "encode_image_bytes", "encode_images", "encode_token_ids", "classify"):
        assert scan["ops"][name], name
        assert scan["unregistered_ops"][name] == [], (name, scan["unregistered_ops"][name])
    # The scan does see TF-Text ops where they are (a positive control for the check above).
    assert {"NormalizeUTF8", "RegexSplitWithOffsets"} <= set(scan["unregistered_ops"]["encode_texts"])
    assert "DecodeImage" in scan["ops"]["encode_image_bytes"]


def test_saved_model_cli_lists_signatures(served):
    returncode, stdout = served["saved_model_cli"]
    assert returncode == 0, stdout[-2000:]
    for name in ("serving_default", "encode_image_bytes", "encode_images", "encode_texts", "encode_token_ids",
                 "classify"):
        assert f"signature_def['{name}']" in stdout
    for tensor in ("inputs['image_bytes']", "inputs['token_ids']", "inputs['lengths']", "outputs['embeddings']",
                   "outputs['class_names']", "outputs['scores']"):
        assert tensor in stdout

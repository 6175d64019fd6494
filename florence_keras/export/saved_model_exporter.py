"""`SavedModelExporter`: any list of `ExportSignature`s -> a versioned SavedModel for TF Serving.

Why `tf.Module` + `tf.saved_model.save` rather than `keras.export.ExportArchive`: both give named signatures
with named outputs (a dict return), but `tf.saved_model.save(signatures=...)` takes the signature mapping
explicitly, so `serving_default` is chosen by name instead of being whichever endpoint was added first;
the model, lookup tables (the tokenizer's) and extra state (class embeddings) are attached as ordinary
trackable attributes; and the export is plain TensorFlow for a backend that is TensorFlow anyway (export
code is the one place STYLE.md allows TF). A resource a signature reads but nobody attached fails loudly
at save time ("untracked resource"), so nothing is silently left out.
"""

import logging
import os
import re
import shutil
import time

import tensorflow as tf

from florence_keras.export import warmup_requests
from florence_keras.export.export_signature import ExportSignature

_VERSION_DIR = re.compile(r"^[0-9]+$")


def existing_versions(base_dir):
    """Sorted integer version directories under `base_dir` (what TF Serving would load)."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(
        int(name) for name in os.listdir(base_dir)
        if _VERSION_DIR.match(name) and os.path.isdir(os.path.join(base_dir, name))
    )


class SavedModelExporter:
    """Writes `BASE_DIR/VERSION/` (saved_model.pb, variables/, assets.extra/ warm-up) from signatures.

    Each signature becomes a SavedModel signature of the same name, with one warm-up `PredictRequest`
    (its `example_inputs`); `serving_default` is an alias of the signature named `serving_default`. The
    version directory appears atomically (written beside it, then renamed), so a TF Serving instance
    watching `BASE_DIR` never loads a half-written version.

    A later task model (detection, VQA, video) exports by building its own `ExportSignature` list (reusing
    `florence_keras.export.serving_ops` for image bytes and token ids) and passing it here — or appending
    it to `clip_signatures(...)` for one server that does both.

    Args:
        signatures: list of `ExportSignature` with distinct names.
        serving_default: name of the signature aliased as `serving_default` (required: choose deliberately).
        model_name: the name the server will serve under; written into the warm-up requests.
        exclude_tensorflow_text: drop signatures that need TF-Text ops, so the whole SavedModel loads on a
            TensorFlow (or TF Serving) build without them. Defaults to `False`.

    Example:
    >>> import numpy as np
    >>> sig = ExportSignature("double", lambda x: {"y": 2.0 * x},
    ...                       {"x": tf.TensorSpec([None], tf.float32)}, {"x": np.ones(2, np.float32)})
    >>> exporter = SavedModelExporter([sig], serving_default="double")
    >>> path = exporter.export("/tmp/doctest_export", version=1, overwrite=True)  # doctest: +SKIP
    >>> sorted(tf.saved_model.load(path).signatures)  # doctest: +SKIP
    ['double', 'serving_default']
    """

    def __init__(self, signatures, serving_default, model_name="florence", exclude_tensorflow_text=False):
        signatures = list(signatures)
        bad = [s for s in signatures if not isinstance(s, ExportSignature)]
        if not signatures or bad:
            raise ValueError(
                f"`signatures` must be a non-empty list of ExportSignature. Received: {bad[:1] or signatures}"
            )
        names = [s.name for s in signatures]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"Signature names must be unique. Received duplicates: {duplicates}")
        if exclude_tensorflow_text:
            signatures = [s for s in signatures if not s.requires_tensorflow_text]
        kept = [s.name for s in signatures]
        if serving_default not in kept:
            raise ValueError(
                f"`serving_default` must name one of the exported signatures {kept}. "
                f"Received: serving_default={serving_default!r}"
                + (" (it needs TF-Text ops, excluded here)" if serving_default in names else "")
            )
        if not isinstance(model_name, str) or not model_name:
            raise ValueError(f"`model_name` must be a non-empty str. Received: model_name={model_name!r}")
        self.signatures = signatures
        self.serving_default = serving_default
        self.model_name = model_name
        self.exclude_tensorflow_text = exclude_tensorflow_text

    @property
    def signature_names(self):
        """Exported signature names, in order (without the `serving_default` alias)."""
        return [s.name for s in self.signatures]

    def export(self, base_dir, version=None, overwrite=False):
        """Exports to `base_dir/version` and returns that path.

        Args:
            base_dir: the model base path TF Serving watches (`--model_base_path`); created if missing.
            version: positive int; defaults to one more than the largest existing version (or 1).
            overwrite: replace an existing `base_dir/version`. Defaults to `False` (an error).

        Returns:
            str, the version directory.
        """
        if version is None:
            version = (existing_versions(base_dir) or [0])[-1] + 1
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"`version` must be a positive int. Received: version={version!r}")
        export_dir = os.path.join(base_dir, str(version))
        if os.path.exists(export_dir) and not overwrite:
            raise FileExistsError(
                f"{export_dir} exists; pass another version or overwrite=True (--overwrite)."
            )
        os.makedirs(base_dir, exist_ok=True)
        staging_dir = os.path.join(base_dir, f".staging-{version}-{os.getpid()}")
        shutil.rmtree(staging_dir, ignore_errors=True)

        start = time.perf_counter()
        root = tf.Module()
        root.signature_resources = {s.name: dict(s.resources) for s in self.signatures}
        concrete = {}
        for signature in self.signatures:
            logging.info("Tracing signature %s", signature.name)
            concrete[signature.name] = signature.concrete_function()
        concrete["serving_default"] = concrete[self.serving_default]
        try:
            tf.saved_model.save(root, staging_dir, signatures=concrete)
            requests = [
                warmup_requests.make_predict_request(self.model_name, s.name, s.example_inputs)
                for s in self.signatures
            ]
            warmup_requests.write_warmup_requests(staging_dir, requests)
            if os.path.exists(export_dir):
                shutil.rmtree(export_dir)
            os.replace(staging_dir, export_dir)
        finally:
            shutil.rmtree(staging_dir, ignore_errors=True)
        logging.info("Exported %s in %.1f s", export_dir, time.perf_counter() - start)
        return export_dir

"""Fixtures of the fuzz tests; writes the per-path outcome counts when `FLORENCE_FUZZ_REPORT` names a file."""

import os

import pytest

from tests.fuzz import fuzz_support


def pytest_sessionfinish(session, exitstatus):
    report = os.environ.get("FLORENCE_FUZZ_REPORT")
    if report:
        fuzz_support.write_report(report)


@pytest.fixture(scope="session")
def served_model(tiny_clip, tmp_path_factory):
    """The served graphs of `encode_image_bytes` and `encode_texts` of a tiny model, built once per session.

    Nightly mode (or `FLORENCE_FUZZ_EXPORT=1`) exports a SavedModel and loads it back (what TF Serving runs);
    the fast suite calls the traced signature functions that the exporter saves (the same graphs), which
    saves ~15 s of export and load.
    """
    import types

    import tensorflow as tf

    from florence_keras import export

    signatures = {s.name: s for s in export.clip_signatures(tiny_clip)}
    wanted = [signatures["encode_image_bytes"], signatures["encode_texts"]]
    if not (fuzz_support.NIGHTLY or os.environ.get("FLORENCE_FUZZ_EXPORT")):
        return types.SimpleNamespace(signatures={s.name: s.concrete_function() for s in wanted})
    exporter = export.SavedModelExporter(wanted, serving_default="encode_image_bytes")
    export_dir = exporter.export(str(tmp_path_factory.mktemp("fuzz_served")), version=1)
    return tf.saved_model.load(export_dir)

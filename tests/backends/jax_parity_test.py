"""The model stack under `KERAS_BACKEND=jax` computes what it computes under TensorFlow (<= 1e-5).

Layers (through the models that use all of them), CoSwin, the text encoder, `FlorenceBackbone`, the Tasks'
`predict` on raw inputs (`FlorenceCLIP`, the zero-shot `FlorenceImageClassifier`) and `FlorenceCLIP.fit` on one
device: `backend_outputs.py` runs once per backend in its own process (the
Keras backend is process-wide) on the same saved weights and inputs, and this test compares the results. CPU JAX is
part of the `test` extra; without it this test fails (see tests/test_extras.py). The training systems
(tf.distribute, the gradient cache, export) are TensorFlow-only and are not run here.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.backends import backend_outputs
from tests.test_extras import require_installed

require_installed("jax")

SCRIPT = backend_outputs.__file__  # run as a script in each backend's process (imported here for its path)
TOLERANCE = 1e-5
CHILD_TIMEOUT_S = 1200


def _run(backend, workdir):
    out = os.path.join(workdir, f"{backend}.npz")
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, SCRIPT, f"--workdir={workdir}", f"--out={out}"], env=env,
                            capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    assert result.returncode == 0, (
        f"KERAS_BACKEND={backend} run exited {result.returncode}; its stderr ends:\n{result.stderr[-6000:]}")
    with np.load(out) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("backends"))
    tf_out = _run("tensorflow", workdir)  # first: it saves the models the JAX run loads
    return tf_out, _run("jax", workdir)


def test_each_run_used_its_backend(outputs):
    tf_out, jax_out = outputs
    assert str(tf_out["backend"]) == "tensorflow" and str(jax_out["backend"]) == "jax"
    assert sorted(tf_out) == sorted(jax_out)


def test_tokenizer_ids_are_identical(outputs):
    tf_out, jax_out = outputs
    np.testing.assert_array_equal(jax_out["tokenizer/token_ids"], tf_out["tokenizer/token_ids"])


@pytest.mark.parametrize("group", ["coswin/", "text_encoder/", "backbone/", "task/predict/", "classifier/",
                                   "swin_style_coswin/", "gelu_text_encoder/"])
def test_forward_outputs_match(outputs, group):
    tf_out, jax_out = outputs
    keys = [k for k in tf_out if k.startswith(group) and tf_out[k].dtype.kind == "f"]
    assert keys, group
    for key in keys:
        assert np.abs(tf_out[key]).max() > 0.1, f"{key} is (near) zero: a vacuous comparison"
        difference = np.abs(jax_out[key] - tf_out[key]).max()
        assert difference <= TOLERANCE, f"{key}: JAX and TensorFlow differ by {difference:.3g}"


def test_variable_length_text_under_jax(outputs):
    _, jax_out = outputs
    np.testing.assert_allclose(jax_out["text_encoder/pooled_output_first_12_ids"],
                               jax_out["text_encoder/pooled_output"], atol=1e-6)


def test_drop_path_runs_in_training_under_both(outputs):
    for out in outputs:
        assert bool(out["swin_style_coswin/drop_path_changes_training_output"])


def test_fit_on_one_device_matches(outputs):
    tf_out, jax_out = outputs
    tf_losses, jax_losses = tf_out["fit/batch_mean_loss"], jax_out["fit/batch_mean_loss"]
    assert len(tf_losses) == 4 and tf_losses[-1] < tf_losses[0] - 0.1  # it trains
    np.testing.assert_allclose(jax_losses, tf_losses, rtol=0, atol=TOLERANCE)
    weights = [k for k in tf_out if k.startswith("fit/weights/")]
    assert len(weights) > 50
    worst = max(weights, key=lambda k: np.abs(jax_out[k] - tf_out[k]).max())
    difference = np.abs(jax_out[worst] - tf_out[worst]).max()
    assert difference <= TOLERANCE, f"after fit, {worst} differs by {difference:.3g}"

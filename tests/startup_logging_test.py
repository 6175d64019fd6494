"""startup_logging: TensorFlow's CUDA probe error is hidden only where it is harmless; everything else is kept."""

import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf

from florence_keras import startup_logging

PROBE_LINE = "2026-01-01 00:00:00.0: E external/local_xla/cuda_platform.cc:51] failed call to cuInit: CUDA error\n"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("found_gpu, verbose, kept", [
    (False, False, "other\n"),
    (True, False, PROBE_LINE + "other\n"),  # a GPU machine: the line may matter there
    (False, True, PROBE_LINE + "other\n"),  # TF_CPP_MIN_LOG_LEVEL=0: the user asked for everything
])
def test_filter_probe_output(found_gpu, verbose, kept):
    assert startup_logging.filter_probe_output(PROBE_LINE + "other\n", found_gpu, verbose) == kept


@pytest.mark.parametrize("device_type, expected", [("CPU", "keep me\n"), ("GPU", PROBE_LINE + "keep me\n")])
def test_probe_output_is_written_back_except_the_probe_line(monkeypatch, capfd, device_type, expected):
    def fake_list_physical_devices():
        os.write(2, (PROBE_LINE + "keep me\n").encode())  # where TensorFlow's C++ logging writes
        return [tf.config.PhysicalDevice(name=f"/physical_device:{device_type}:0", device_type=device_type)]

    monkeypatch.setattr(tf.config, "list_physical_devices", fake_list_physical_devices)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    capfd.readouterr()
    devices = startup_logging.list_physical_devices_quietly()
    assert [d.device_type for d in devices] == [device_type]
    assert capfd.readouterr().err == expected


# Import the package, tokenize in tf.data and run the text encoder: the start of every run. (TensorFlow logs an
# ERROR when its oneDNN pass meets an integer op it has no kernel for on this CPU: the packer's ragged concat and
# `take_along_axis` did that; they are written with other ops now.)
HEALTHY_START = """
import florence_keras, numpy as np, tensorflow as tf
from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
from florence_keras.models.florence_text_encoder import FlorenceTextEncoder
pre = FlorenceCLIPPreprocessor(florence_keras.FlorenceTokenizer(), sequence_length=8)
ids = next(iter(tf.data.Dataset.from_tensor_slices(["a red circle", "a cat"]).batch(2).map(pre.tokenize)))
encoder = FlorenceTextEncoder(hidden_dim=8, num_layers=1, num_heads=2, max_sequence_length=8)
tf.function(lambda x: encoder(x)["pooled_output"])(ids)
print(int(tf.constant(1) + 1))
"""


def test_a_healthy_start_prints_no_error_lines():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = HEALTHY_START
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0 and result.stdout.strip() == "2", result.stderr[-3000:]
    error_lines = [line for line in result.stderr.splitlines() if re.search(r"(^E\d{4} |: E |cuInit)", line)]
    assert not error_lines, result.stderr[-3000:]

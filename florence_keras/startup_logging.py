"""A quiet start on machines without a GPU: TensorFlow's CUDA probe error is not shown there.

The `tensorflow` wheel (the one GPU users need too) looks for a GPU the first time devices are listed (or while it
is imported, once absl has parsed flags). On a machine with CUDA libraries but no usable GPU it logs, at ERROR level,

    E external/local_xla/xla/stream_executor/cuda/cuda_platform.cc:51] failed call to cuInit: ...

and runs on the CPU as intended. `list_physical_devices_quietly` imports TensorFlow and lists the devices once
with the process's stderr (file descriptor 2, where TensorFlow's C++ logging writes) captured, then writes back
everything it captured except that line — and drops it only when no GPU was found and TensorFlow's C++ logging is
not verbose (`TF_CPP_MIN_LOG_LEVEL` >= 1, florence_keras's default). Any other message, and the probe line on a
machine where a GPU was found, is shown unchanged. Listing physical devices does not fix the logical device
configuration (`tf.config.set_logical_device_configuration` still works afterwards).
"""

import os
import sys
import tempfile

CUDA_PROBE_MESSAGE = "failed call to cuInit"


def filter_probe_output(text, found_gpu, verbose):
    """The captured stderr `text` without the CUDA probe error, unless a GPU was found or logging is verbose.

    Example:
    >>> filter_probe_output("E x.cc:51] failed call to cuInit: CUDA error\\nother\\n", False, False)
    'other\\n'
    """
    if found_gpu or verbose:
        return text
    return "".join(line for line in text.splitlines(keepends=True) if CUDA_PROBE_MESSAGE not in line)


def _verbose():
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")) < 1
    except ValueError:
        return True


def list_physical_devices_quietly():
    """`tf.config.list_physical_devices()`, without the harmless CUDA probe error on a machine without a GPU.

    Returns:
        list of `tf.config.PhysicalDevice`.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to keep clean
        import tensorflow as tf

        return tf.config.list_physical_devices()
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            # Importing TensorFlow may probe CUDA already (it does after absl has parsed flags): inside the capture.
            import tensorflow as tf

            devices = tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode("utf-8", "replace")
    found_gpu = any(device.device_type == "GPU" for device in devices)
    kept = filter_probe_output(text, found_gpu, _verbose())
    if kept:
        os.write(2, kept.encode("utf-8"))
    return devices

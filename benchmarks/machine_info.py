"""What machine a benchmark ran on: CPU model and ISA, cores, memory, framework builds, thread settings.

    python benchmarks/machine_info.py          # prints the record (and both frameworks' builds) as JSON

Every `run_all.py` result records `collect()` (the driver's view: CPU, memory, package versions, environment) and,
per worker, `framework_build(side)` (what the framework in that process was built with and how it is configured).
Results are filed per CPU generation, `CpuFeatures.generation_key` ("amd-zen4-avx512_bf16", "amd-zen3-avx2"):
ratios from different generations are never mixed.

The CPU is read by the library's `florence_keras/training/cpu_features.py` (the precision choice uses the same
code). It is loaded from this repository by file path: importing the `florence_keras` package would start
TensorFlow in the driver process, which only orchestrates the workers (and a `--baseline-root` tree on the path
must not replace it).
"""

import importlib.metadata
import importlib.util
import json
import os
import platform
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU_FEATURES_PATH = os.path.join(REPO, "florence_keras", "training", "cpu_features.py")

# Environment variables that change CPU kernels or threading (recorded as set, or None).
RELEVANT_ENV = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "OMP_PROC_BIND",
    "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "KMP_AFFINITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
    "ONEDNN_DEFAULT_FPMATH_MODE", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "TF_ENABLE_ONEDNN_OPTS",
    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "XLA_FLAGS", "TF_XLA_FLAGS", "CUDA_VISIBLE_DEVICES",
)
PACKAGES = ("tensorflow", "keras", "keras-hub", "torch", "transformers", "numpy")


def _load_cpu_features():
    if not os.path.exists(CPU_FEATURES_PATH):  # not a source checkout: the installed library's (imports TF)
        from florence_keras.training import cpu_features as installed

        return installed
    module = sys.modules.get("_florence_cpu_features")
    if module is None:
        spec = importlib.util.spec_from_file_location("_florence_cpu_features", CPU_FEATURES_PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
        spec.loader.exec_module(module)
    return module


def cpu_features():
    """The host's `CpuFeatures` (florence_keras.training.cpu_features)."""
    return _load_cpu_features().CpuFeatures.detect()


def environment(env=None):
    """`{name: value or None}` of `RELEVANT_ENV` in `env` (default: this process's)."""
    env = os.environ if env is None else env
    return {name: env.get(name) for name in RELEVANT_ENV}


def _versions():
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _memory():
    memory = {}
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("MemTotal", "MemAvailable")):
                    key, value = line.split(":")
                    memory[key] = value.strip()
    except OSError:
        pass
    return memory


def collect(cpu=None, env=None):
    """The driver's record of the machine (no framework imported).

    Args:
        cpu: a `CpuFeatures` (default: the host's).
        env: environment mapping (default: this process's).

    Returns:
        dict with `cpu` (`CpuFeatures.to_dict()`), `generation_key`, `platform`, `python`, `cpu_count`,
        `affinity_cores`, memory, `packages` (versions) and `env` (`RELEVANT_ENV`).
    """
    cpu = cpu_features() if cpu is None else cpu
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    info = {"cpu": cpu.to_dict(), "generation_key": cpu.generation_key, "platform": platform.platform(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(), "affinity_cores": affinity,
            "packages": _versions(), "env": environment(env)}
    info.update(_memory())
    # The keys the report read before CPU generations were recorded.
    info["cpu_model"] = cpu.model_name
    info["avx512_bf16"] = "avx512_bf16" in cpu.flags
    info["amx"] = "amx_tile" in cpu.flags
    return info


def framework_build(side):
    """What the framework of this worker process was built with and how it runs (call after configuring it).

    Args:
        side: "tf", or "torch" / "torch_default" (any side starting with "torch").
    """
    info = {"env": environment()}
    if side.startswith("torch"):
        import torch

        info.update({"torch": torch.__version__, "num_threads": torch.get_num_threads(),
                     "num_interop_threads": torch.get_num_interop_threads(),
                     "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                     "mkldnn": torch.backends.mkldnn.is_available(), "mkl": torch.backends.mkl.is_available(),
                     "openmp": torch.backends.openmp.is_available()})
        return info
    import tensorflow as tf

    try:
        from tensorflow.python.util import _pywrap_util_port  # private: the only place TF says it

        onednn = bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        onednn = None
    build = dict(tf.sysconfig.get_build_info())
    gpus = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(gpu)
        except (RuntimeError, ValueError):
            details = {}
        gpus.append({"name": details.get("device_name", gpu.name),
                     "compute_capability": details.get("compute_capability")})
    info.update({"tensorflow": tf.__version__, "onednn": onednn,
                 # TF_ENABLE_ONEDNN_OPTS=0 switches the oneDNN kernels off even in a oneDNN build.
                 "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
                 "cuda": build.get("cuda_version"), "cudnn": build.get("cudnn_version"), "gpus": gpus,
                 "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                 "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()})
    return info


def describe(machine):
    """One Markdown-safe line: "AMD EPYC, family 25 model 17 (Zen 4), AVX-512 with bf16, 2 cores"."""
    cpu = machine.get("cpu")
    if not cpu:  # a result written before CPU generations were recorded
        return f"{machine.get('cpu_model', '?')} (avx512_bf16: {machine.get('avx512_bf16', '?')})"
    return cpu["description"]


def main():
    info = collect()
    for side in ("tf", "torch"):
        try:
            info[f"{side}_build"] = framework_build(side)
        except ImportError as error:
            info[f"{side}_build"] = {"error": str(error)}
    print(json.dumps(info, indent=1, default=str))


if __name__ == "__main__":
    main()

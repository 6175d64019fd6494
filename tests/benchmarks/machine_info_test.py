"""benchmarks/machine_info.py: the machine record every result carries, and its Markdown section."""

import inspect
import json

from benchmarks import machine_info
from benchmarks import report
from florence_keras.training import cpu_features
from florence_keras.training.cpu_features import CpuFeatures

ZEN3 = CpuFeatures(model_name="AMD EPYC 7B13", vendor="AuthenticAMD", family=25, model=1,
                   flags=frozenset({"avx", "avx2", "fma"}), logical_cores=2, source="/proc/cpuinfo")


def test_the_cpu_is_read_by_the_library_code():
    # One place reads the ISA flags: the harness loads the library's file (by path, without starting TensorFlow).
    loaded = machine_info._load_cpu_features()
    assert inspect.getsource(loaded) == inspect.getsource(cpu_features)
    assert loaded.CpuFeatures.__name__ == "CpuFeatures"


def test_collect_records_cpu_generation_packages_and_environment():
    env = {"OMP_WAIT_POLICY": "PASSIVE", "ONEDNN_MAX_CPU_ISA": "AVX2", "HOME": "/root"}
    info = machine_info.collect(cpu=ZEN3, env=env)
    json.dumps(info)
    assert info["generation_key"] == "amd-zen3-avx2"
    assert info["cpu"]["isa_flags"]["avx2"] and not info["cpu"]["isa_flags"]["avx512_bf16"]
    assert info["cpu"]["native_bf16"] is False
    assert info["env"]["OMP_WAIT_POLICY"] == "PASSIVE" and info["env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert info["env"]["ATEN_CPU_CAPABILITY"] is None and "HOME" not in info["env"]
    assert set(info["packages"]) >= {"tensorflow", "torch", "transformers"}
    # The keys results written before this record existed had.
    assert info["cpu_model"] == "AMD EPYC 7B13" and info["avx512_bf16"] is False and info["amx"] is False


def test_describe_also_reads_results_written_before_generations_were_recorded():
    assert machine_info.describe({"cpu": ZEN3.to_dict()}) == (
        "AMD EPYC 7B13, family 25 model 1 (Zen 3), AVX2 (no AVX-512), 2 cores")
    assert machine_info.describe({"cpu_model": "AMD EPYC", "avx512_bf16": True}) == (
        "AMD EPYC (avx512_bf16: True)")


def test_report_has_a_machine_section_with_each_worker():
    machine = machine_info.collect(cpu=ZEN3, env={})
    document = {
        "mode": "full", "command": "c", "date": "d", "rounds": 5, "threads": 2,
        "load_average_start": [0.5], "load_average_end": [0.5], "machine": machine, "groups": [],
        "results_key": "amd-zen3-avx2",
        "workers": {
            "tf": {"build": {"tensorflow": "2.20.0", "onednn": True, "onednn_opts": "default (on)",
                             "intra_op_threads": 2, "inter_op_threads": 2, "gpus": [],
                             "env": {"TF_CPP_MIN_LOG_LEVEL": None}}},
            "torch_default": {"build": {"torch": "2.13.0", "num_threads": 2, "num_interop_threads": 2,
                                        "cpu_capability": "AVX2", "mkl": True, "mkldnn": True,
                                        "env": {"OMP_WAIT_POLICY": None}}},
        },
        "reference_configs": {"transformers (default)": {"side": "torch_default", "settings": "defaults"}},
    }
    text = report.markdown(document)
    assert "* CPU: AMD EPYC 7B13, family 25 model 1 (Zen 3), AVX2 (no AVX-512), 2 cores; results key " \
           "`amd-zen3-avx2`." in text
    assert "avx2 yes" in text and "avx512_bf16 no" in text
    assert "Worker `tf`: TensorFlow 2.20.0, oneDNN build True" in text
    assert ("Worker `torch_default`: torch 2.13.0, 2 threads, 2 inter-op, ATen CPU capability AVX2"
            in text)
    assert "environment: none of the recorded variables set" in text
    assert "faster of the two" in text

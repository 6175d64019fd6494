"""`CpuFeatures`: parsing of /proc/cpuinfo and sysctl text from the machines the project meets (no dependency on
the test machine's own CPU, except one smoke check that detection never fails)."""

import json

import pytest

from florence_keras.training.cpu_features import CpuFeatures

# The first lines of /proc/cpuinfo on the two machines (flags abridged to the ones that matter) and a
# second processor block that must be ignored.
ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 fma bmi2

processor\t: 1
vendor_id\t: GenuineIntel
flags\t\t: avx512f avx512_bf16
"""
ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16
"""
SAPPHIRE_RAPIDS = """vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: avx2 fma avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8
"""
SKYLAKE = """vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 85
model name\t: Intel(R) Xeon(R) Platinum 8175M CPU @ 2.50GHz
flags\t\t: avx2 fma avx512f avx512bw
"""
GRAVITON3 = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 sve bf16 i8mm
CPU implementer\t: 0x41
CPU part\t: 0xd40
"""


@pytest.mark.parametrize("text, level, native, key, micro", [
    (ZEN3, "avx2", False, "amd-zen3-avx2", "Zen 3"),
    (ZEN4, "avx512_bf16", True, "amd-zen4-avx512_bf16", "Zen 4"),
    (SAPPHIRE_RAPIDS, "amx_bf16", True, "intel-f6-m143-amx_bf16", None),
    (SKYLAKE, "avx512", False, "intel-f6-m85-avx512", None),
    (GRAVITON3, "arm_bf16", False, "arm-unknown-arm_bf16", None),
])
def test_cpuinfo_is_parsed_into_isa_level_native_bf16_and_generation(text, level, native, key, micro):
    cpu = CpuFeatures.from_cpuinfo(text, logical_cores=2)
    assert cpu.isa_level == level
    assert cpu.native_bf16 is native
    assert cpu.generation_key == key
    assert cpu.microarchitecture == micro
    assert cpu.source == "/proc/cpuinfo"


def test_only_the_first_processor_block_counts():
    cpu = CpuFeatures.from_cpuinfo(ZEN3)
    assert cpu.vendor == "AuthenticAMD" and cpu.model_name == "AMD EPYC 7B13"
    assert (cpu.family, cpu.model) == (25, 1)
    assert "avx512f" not in cpu.flags  # the second block's flags
    flags = cpu.isa_flags()
    assert flags["avx2"] and flags["fma"] and not flags["avx512f"] and not flags["avx512_bf16"]
    assert "sve" not in flags  # Arm flags are not listed for an x86 CPU


def test_zen4_description_and_json_record():
    cpu = CpuFeatures.from_cpuinfo(ZEN4, logical_cores=2)
    assert cpu.description == "AMD EPYC, family 25 model 17 (Zen 4), AVX-512 with bf16, 2 cores"
    record = json.loads(json.dumps(cpu.to_dict()))
    assert record["generation_key"] == "amd-zen4-avx512_bf16"
    assert record["isa_flags"]["avx512_bf16"] is True and record["isa_flags"]["amx_bf16"] is False
    assert record["native_bf16"] is True


def test_macos_sysctl_values():
    intel_mac = CpuFeatures.from_sysctl({
        "machdep.cpu.brand_string": "Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz", "machdep.cpu.vendor": "GenuineIntel",
        "machdep.cpu.family": "6", "machdep.cpu.model": "158",
        "machdep.cpu.features": "FPU SSE SSE2 SSE4.2 AVX1.0 FMA", "machdep.cpu.leaf7_features": "BMI1 AVX2 BMI2"})
    assert intel_mac.isa_level == "avx2" and not intel_mac.native_bf16
    assert intel_mac.generation_key == "intel-f6-m158-avx2"
    cooper_lake_like = CpuFeatures.from_sysctl({"machdep.cpu.leaf7_features": "AVX2 AVX512F AVX512BF16"})
    assert cooper_lake_like.native_bf16 and cooper_lake_like.isa_level == "avx512_bf16"
    apple = CpuFeatures.from_sysctl({"machdep.cpu.brand_string": "Apple M2", "hw.optional.arm.FEAT_BF16": "1",
                                     "hw.optional.neon": "1"})
    assert apple.isa_level == "arm_bf16" and apple.vendor == "ARM"
    assert not apple.native_bf16  # only the x86 flags that oneDNN's bfloat16 kernels use count


def test_nothing_read_means_unknown_not_a_guess():
    cpu = CpuFeatures(model_name="x86_64")
    assert cpu.isa_level == "unknown" and not cpu.native_bf16
    assert cpu.generation_key == "cpu-x86-64-unknown"
    assert CpuFeatures.from_cpuinfo("").isa_level == "unknown"


def test_detect_on_this_machine_returns_a_record():
    cpu = CpuFeatures.detect()  # whatever the CPU: it must not raise, and the record must be JSON-able
    json.dumps(cpu.to_dict())
    assert cpu.logical_cores is None or cpu.logical_cores >= 1

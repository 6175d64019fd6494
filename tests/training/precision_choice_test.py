"""`precision="auto"` and the warning for emulated bfloat16, with injected devices and CPU flags (the test machine's
own hardware plays no part)."""

import logging

import pytest

from florence_keras.training import precision_choice
from florence_keras.training.cpu_features import CpuFeatures
from florence_keras.training.precision_choice import choose_precision
from florence_keras.training.precision_choice import resolve_precision

ZEN3 = CpuFeatures(model_name="AMD EPYC 7B13", vendor="AuthenticAMD", family=25, model=1,
                   flags=frozenset({"avx", "avx2", "fma"}))
ZEN4 = CpuFeatures(model_name="AMD EPYC", vendor="AuthenticAMD", family=25, model=17,
                   flags=frozenset({"avx2", "fma", "avx512f", "avx512_bf16"}))
SKYLAKE = CpuFeatures(model_name="Xeon 8175M", vendor="GenuineIntel", family=6, model=85,
                      flags=frozenset({"avx2", "avx512f"}))
SAPPHIRE_RAPIDS = CpuFeatures(model_name="Xeon 8488C", vendor="GenuineIntel", family=6, model=143,
                              flags=frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16"}))
UNKNOWN = CpuFeatures(model_name="x86_64")


@pytest.fixture(autouse=True)
def fresh_warning_state(monkeypatch):
    # Each test starts with no warning given yet in this process.
    monkeypatch.setattr(precision_choice, "_WARNED", set())


@pytest.mark.parametrize("cpu, expected", [
    (ZEN3, "float32"), (SKYLAKE, "float32"), (UNKNOWN, "float32"),
    (ZEN4, "mixed_bfloat16"), (SAPPHIRE_RAPIDS, "mixed_bfloat16"),
])
def test_auto_on_a_cpu_follows_the_native_bf16_flags(cpu, expected):
    choice = choose_precision("auto", accelerators=(), cpu=cpu)
    assert choice.precision == expected
    assert choice.requested == "auto" and choice.warning is None
    assert cpu.description in choice.reason


@pytest.mark.parametrize("kind", ["GPU", "TPU"])
def test_auto_on_an_accelerator_is_bfloat16_whatever_the_host_cpu(kind):
    choice = choose_precision("auto", accelerators=(kind, kind), cpu=ZEN3)
    assert choice.precision == "mixed_bfloat16" and choice.warning is None
    assert f"2 {kind}(s)" in choice.reason


@pytest.mark.parametrize("requested", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_an_explicit_precision_is_kept(requested):
    for cpu in (ZEN3, ZEN4):
        assert choose_precision(requested, accelerators=(), cpu=cpu).precision == requested
    assert choose_precision(requested, accelerators=("GPU",)).precision == requested


def test_explicit_bfloat16_warns_only_where_it_is_emulated():
    warning = choose_precision("mixed_bfloat16", accelerators=(), cpu=ZEN3).warning
    assert "float32 is expected to be faster" in warning and "0.52x" in warning
    assert "AMD EPYC 7B13" in warning and "AVX2" in warning
    assert choose_precision("mixed_bfloat16", accelerators=(), cpu=ZEN4).warning is None
    assert choose_precision("mixed_bfloat16", accelerators=("GPU",), cpu=ZEN3).warning is None
    assert choose_precision("float32", accelerators=(), cpu=ZEN3).warning is None


def test_resolve_logs_the_warning_once_per_process(caplog):
    caplog.set_level(logging.INFO, logger=precision_choice.__name__)
    for _ in range(3):
        assert resolve_precision("mixed_bfloat16", accelerators=(), cpu=ZEN3) == "mixed_bfloat16"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "float32 is expected to be faster" in warnings[0].getMessage()
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 3  # the choice itself is logged every time, at INFO
    caplog.clear()
    assert resolve_precision("auto", accelerators=(), cpu=ZEN3) == "float32"
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_bad_precision_is_refused_with_the_value_quoted():
    with pytest.raises(ValueError, match="Received: precision='bf16'"):
        choose_precision("bf16", accelerators=(), cpu=ZEN4)


def test_detection_path_runs_on_this_machine():
    # Real device and CPU detection: only that it answers with a valid policy (which one depends on the machine).
    assert choose_precision("auto").precision in precision_choice.PRECISIONS

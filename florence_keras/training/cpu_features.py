"""`CpuFeatures`: the host CPU's model and instruction-set flags, read from the operating system.

The one place that reads them: the precision choice (`precision_choice.py`: bfloat16 only where the CPU
computes it natively) and the benchmark harness (`benchmarks/machine_info.py`, which records the CPU with
every result and files results per CPU generation) both use it.

Sources, in order: `/proc/cpuinfo` (Linux, x86 `flags` or Arm `Features`), `sysctl` (macOS), else only
`platform.processor()` with no flags (`isa_level` is then "unknown" and nothing is claimed about the ISA).

Example:

>>> cpu = CpuFeatures.from_cpuinfo(
...     "vendor_id : AuthenticAMD\\ncpu family : 25\\nmodel : 1\\nmodel name : AMD EPYC 7B13\\n"
...     "flags : fpu sse2 avx avx2 fma\\n")
>>> cpu.isa_level, cpu.native_bf16, cpu.generation_key
('avx2', False, 'amd-zen3-avx2')
"""

import dataclasses
import os
import platform
import subprocess

# The flags recorded with every benchmark result: what decides which kernels oneDNN / XLA can use.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "bf16")
# Native bfloat16 arithmetic on x86: AVX-512 BF16 (Cooper Lake, Zen 4 and later) or AMX-BF16 (Sapphire Rapids).
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")

# AMD (family, first model, last model) -> microarchitecture. Family 25 holds both Zen 3 and Zen 4 (the
# issue's two machines: family 25 model 1 is Zen 3, model 17 Zen 4), so the model number matters.
_AMD_MICROARCHITECTURES = (
    (23, 0x00, 0x2F, "Zen"), (23, 0x30, 0xFF, "Zen 2"),
    (25, 0x00, 0x0F, "Zen 3"), (25, 0x10, 0x1F, "Zen 4"), (25, 0x20, 0x5F, "Zen 3"),
    (25, 0x60, 0x7F, "Zen 4"), (25, 0xA0, 0xAF, "Zen 4"),
    (26, 0x00, 0xFF, "Zen 5"),
)
_ISA_NAMES = {"amx_bf16": "AMX with bf16", "avx512_bf16": "AVX-512 with bf16", "avx512": "AVX-512 (no bf16)",
              "avx2": "AVX2 (no AVX-512)", "arm_bf16": "Arm with bf16", "arm_sve": "Arm SVE",
              "arm_neon": "Arm NEON", "baseline": "no AVX2", "unknown": "ISA not read"}


def _int_or_none(value):
    """"25" -> 25, "0x19" -> 25, "" -> None."""
    text = str(value).strip()
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None


def _slug(text):
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


@dataclasses.dataclass(frozen=True)
class CpuFeatures:
    """What the host CPU is and which instruction sets it has.

    Args:
        model_name: the CPU's marketing name ("AMD EPYC 7B13"; some clouds show only "AMD EPYC").
        vendor: "AuthenticAMD", "GenuineIntel", "ARM", ... ("" if unknown).
        family: x86 CPU family (AMD 25 = Zen 3 / Zen 4), or None.
        model: x86 CPU model within the family, or None.
        flags: frozenset of lower-case ISA flags as the kernel names them (`avx2`, `avx512_bf16`, ...).
        logical_cores: logical CPUs this process may run on, or None.
        source: where the facts came from ("/proc/cpuinfo", "sysctl", "platform").
    """

    model_name: str = ""
    vendor: str = ""
    family: int = None
    model: int = None
    flags: frozenset = frozenset()
    logical_cores: int = None
    source: str = ""

    @classmethod
    def from_cpuinfo(cls, text, logical_cores=None):
        """Parses the text of `/proc/cpuinfo` (the first processor's block)."""
        fields = {}
        for line in text.splitlines():
            if not line.strip():
                if fields:
                    break  # end of the first processor's block
                continue
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
        flags = fields.get("flags") or fields.get("features") or ""
        vendor = fields.get("vendor_id", "")
        if not vendor and fields.get("cpu implementer"):
            vendor = "ARM"
        return cls(model_name=fields.get("model name", "") or fields.get("hardware", ""), vendor=vendor,
                   family=_int_or_none(fields.get("cpu family", "")), model=_int_or_none(fields.get("model", "")),
                   flags=frozenset(flags.lower().split()), logical_cores=logical_cores, source="/proc/cpuinfo")

    @classmethod
    def from_sysctl(cls, values, logical_cores=None):
        """From macOS `sysctl` values: `{"machdep.cpu.brand_string": ..., "machdep.cpu.features": ...,
        "machdep.cpu.leaf7_features": ..., "hw.optional.arm.FEAT_BF16": "1", ...}` (missing keys are fine)."""
        flags = set()
        for key in ("machdep.cpu.features", "machdep.cpu.leaf7_features"):
            for name in values.get(key, "").lower().split():
                # macOS spells AVX-512 flags without the kernel's underscores (AVX512BF16, AVX512VNNI).
                flags.add({"avx512bf16": "avx512_bf16", "avx512vnni": "avx512_vnni"}.get(name, name))
        if str(values.get("hw.optional.arm.FEAT_BF16", "0")).strip() == "1":
            flags.add("bf16")
        if str(values.get("hw.optional.neon", values.get("hw.optional.AdvSIMD", "0"))).strip() == "1":
            flags.add("asimd")
        return cls(model_name=values.get("machdep.cpu.brand_string", ""),
                   vendor=values.get("machdep.cpu.vendor", "ARM" if "asimd" in flags else ""),
                   family=_int_or_none(values.get("machdep.cpu.family", "")),
                   model=_int_or_none(values.get("machdep.cpu.model", "")),
                   flags=frozenset(flags), logical_cores=logical_cores, source="sysctl")

    @classmethod
    def detect(cls):
        """The CPU this process runs on (never raises: unknown facts stay empty)."""
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count()
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                return cls.from_cpuinfo(f.read(), logical_cores=cores)
        except OSError:
            pass
        if platform.system() == "Darwin":
            keys = ("machdep.cpu.brand_string", "machdep.cpu.vendor", "machdep.cpu.family", "machdep.cpu.model",
                    "machdep.cpu.features", "machdep.cpu.leaf7_features", "hw.optional.arm.FEAT_BF16",
                    "hw.optional.neon", "hw.optional.AdvSIMD")
            values = {}
            for key in keys:
                try:
                    done = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=10,
                                          check=False)
                except (OSError, subprocess.SubprocessError):
                    continue
                if done.returncode == 0:
                    values[key] = done.stdout.strip()
            if values:
                return cls.from_sysctl(values, logical_cores=cores)
        return cls(model_name=platform.processor() or platform.machine(), logical_cores=cores, source="platform")

    @property
    def native_bf16(self):
        """True if the CPU has bfloat16 arithmetic instructions (x86: avx512_bf16 or amx_bf16)."""
        return any(flag in self.flags for flag in NATIVE_BF16_FLAGS)

    @property
    def isa_level(self):
        """The widest vector ISA: amx_bf16 | avx512_bf16 | avx512 | avx2 | arm_bf16 | arm_sve | arm_neon |
        baseline | unknown (no flags read)."""
        if not self.flags:
            return "unknown"
        for level, flag in (("amx_bf16", "amx_bf16"), ("avx512_bf16", "avx512_bf16"), ("avx512", "avx512f"),
                            ("avx2", "avx2"), ("arm_bf16", "bf16"), ("arm_sve", "sve"), ("arm_neon", "asimd")):
            if flag in self.flags:
                return level
        return "baseline"

    @property
    def microarchitecture(self):
        """"Zen 3", "Zen 4", ... for AMD CPUs of a known family and model, else None."""
        if self.vendor == "AuthenticAMD" and self.family is not None and self.model is not None:
            for family, first, last, name in _AMD_MICROARCHITECTURES:
                if self.family == family and first <= self.model <= last:
                    return name
        return None

    @property
    def generation_key(self):
        """A file-name-safe key of the CPU generation: microarchitecture (or vendor, family and model) + ISA
        level, e.g. "amd-zen4-avx512_bf16", "amd-zen3-avx2", "intel-f6-m143-amx_bf16". Benchmark results of
        different keys are never mixed."""
        vendor = {"AuthenticAMD": "amd", "GenuineIntel": "intel"}.get(self.vendor, _slug(self.vendor) or "cpu")
        if self.microarchitecture:
            name = f"{vendor}-{_slug(self.microarchitecture).replace('-', '')}"
        elif self.family is not None:
            name = f"{vendor}-f{self.family}-m{self.model}"
        else:
            name = f"{vendor}-{_slug(self.model_name) or 'unknown'}"
        return f"{name}-{self.isa_level}"

    @property
    def description(self):
        """One line for humans: "AMD EPYC, family 25 model 17 (Zen 4), AVX-512 with bf16, 2 cores"."""
        parts = [self.model_name or "unknown CPU"]
        if self.family is not None:
            parts.append(f"family {self.family} model {self.model}"
                         + (f" ({self.microarchitecture})" if self.microarchitecture else ""))
        parts.append(_ISA_NAMES[self.isa_level] + (", AMX" if "amx_tile" in self.flags and
                                                   self.isa_level != "amx_bf16" else ""))
        if self.logical_cores:
            parts.append(f"{self.logical_cores} cores")
        return ", ".join(parts)

    def isa_flags(self):
        """`{flag: bool}` for every flag of `ISA_FLAGS` that applies to this architecture."""
        arm = self.isa_level.startswith("arm")
        wanted = [f for f in ISA_FLAGS if (f in ("asimd", "sve", "bf16")) == arm]
        return {flag: flag in self.flags for flag in wanted}

    def to_dict(self):
        """JSON-able facts (not the full flag list: `isa_flags()`'s)."""
        return {"model_name": self.model_name, "vendor": self.vendor, "family": self.family, "model": self.model,
                "microarchitecture": self.microarchitecture, "logical_cores": self.logical_cores,
                "isa_level": self.isa_level, "native_bf16": self.native_bf16, "isa_flags": self.isa_flags(),
                "generation_key": self.generation_key, "description": self.description, "source": self.source}

"""`PrecisionChoice`: which precision policy to train in — bfloat16 only where it pays.

`precision="auto"` (the recipes' default) picks:

* `mixed_bfloat16` on a GPU or TPU;
* `mixed_bfloat16` on a CPU with native bfloat16 instructions (`avx512_bf16` or `amx_bf16`: Zen 4, Cooper Lake,
  Sapphire Rapids and later). On a Zen 4 the FlorenceCLIP-T UniCL step ran 1.57x faster than in float32
  (docs/benchmarks.md);
* `float32` on any other CPU. Without those instructions bfloat16 is emulated: on a Zen 3 (AVX2) the same step ran at
  0.52x float32's speed (issue 17).

An explicit `mixed_bfloat16` on a CPU without native bfloat16 is kept (the caller asked for it) and logs one warning
per process saying that float32 is expected to be faster there.

Under `multi_worker` every worker decides for its own machine; pass an explicit precision to a cluster of mixed
machines.

Example:

>>> from florence_keras.training.cpu_features import CpuFeatures
>>> zen3 = CpuFeatures(model_name="AMD EPYC 7B13", flags=frozenset({"avx2", "fma"}))
>>> choose_precision("auto", accelerators=(), cpu=zen3).precision
'float32'
>>> choose_precision("auto", accelerators=("GPU",), cpu=zen3).precision
'mixed_bfloat16'
"""

import dataclasses
import logging

from florence_keras.training.cpu_features import NATIVE_BF16_FLAGS
from florence_keras.training.cpu_features import CpuFeatures

logger = logging.getLogger(__name__)

AUTO = "auto"
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# The measurement quoted in the warning (issue 17, `benchmarks/run_all.py --only florence_t_unicl_step`).
EMULATED_BF16_MEASUREMENT = ("the FlorenceCLIP-T UniCL step ran at 0.52x float32's speed on an AMD Zen 3 (AVX2) "
                             "CPU")

# Generation keys already warned about in this process (one warning per process and machine).
_WARNED = set()


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
    """The precision policy to use and why.

    Args:
        precision: "float32", "mixed_bfloat16" or "mixed_float16" (what to pass to the trainer).
        requested: what the caller asked for ("auto" or one of the above).
        reason: one sentence naming the device or CPU that decided it.
        warning: a warning to log (explicit bfloat16 on a CPU that emulates it), else None.
    """

    precision: str
    requested: str
    reason: str
    warning: str = None


def _detect_accelerators():
    """Device types of the visible accelerators ("GPU", "TPU"), via TensorFlow (no op is run)."""
    import tensorflow as tf

    return tuple(kind for kind in ("GPU", "TPU") for _ in tf.config.list_physical_devices(kind))


def choose_precision(requested=AUTO, *, accelerators=None, cpu=None):
    """Decides the precision policy for `requested` on this machine (pure: logs nothing).

    Args:
        requested: "auto", "float32", "mixed_bfloat16" or "mixed_float16".
        accelerators: device types of the visible accelerators (e.g. `("GPU",)`, `()` for a CPU-only machine);
            None reads them from TensorFlow.
        cpu: a `CpuFeatures`; None reads the host's (`CpuFeatures.detect()`). Only consulted without
            accelerators.

    Returns:
        A `PrecisionChoice`.
    """
    if requested != AUTO and requested not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {(AUTO,) + PRECISIONS}. Received: precision={requested!r}")
    accelerators = tuple(_detect_accelerators() if accelerators is None else accelerators)
    if accelerators:
        device = f"{len(accelerators)} {accelerators[0]}(s)"
        if requested == AUTO:
            return PrecisionChoice("mixed_bfloat16", requested, f"auto: {device} visible: mixed_bfloat16")
        return PrecisionChoice(requested, requested, f"{requested} as requested ({device} visible)")
    cpu = CpuFeatures.detect() if cpu is None else cpu
    native = cpu.native_bf16
    if requested == AUTO:
        if native:
            have = ", ".join(f for f in NATIVE_BF16_FLAGS if f in cpu.flags)
            return PrecisionChoice("mixed_bfloat16", requested,
                                   f"auto: CPU with native bfloat16 ({cpu.description}; {have}): mixed_bfloat16")
        return PrecisionChoice("float32", requested,
                               f"auto: CPU without native bfloat16 ({cpu.description}; no "
                               f"{' or '.join(NATIVE_BF16_FLAGS)} flag): float32")
    warning = None
    if requested == "mixed_bfloat16" and not native:
        warning = (f"precision='mixed_bfloat16' on a CPU without native bfloat16 ({cpu.description}; no "
                   f"{' or '.join(NATIVE_BF16_FLAGS)} flag): bfloat16 is emulated there and float32 is expected to "
                   f"be faster ({EMULATED_BF16_MEASUREMENT}). Use precision 'float32', or 'auto' to choose per "
                   "machine.")
    return PrecisionChoice(requested, requested, f"{requested} as requested (CPU: {cpu.description})", warning)


def resolve_precision(requested=AUTO, *, accelerators=None, cpu=None):
    """`choose_precision`, logged: the choice at INFO, its warning (once per process and CPU) at WARNING.

    Returns:
        The precision policy name to pass to the trainer.
    """
    choice = choose_precision(requested, accelerators=accelerators, cpu=cpu)
    logger.info("Precision: %s", choice.reason)
    if choice.warning:
        key = (cpu or CpuFeatures.detect()).generation_key
        if key not in _WARNED:
            _WARNED.add(key)
            logger.warning("%s", choice.warning)
    return choice.precision

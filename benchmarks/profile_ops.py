"""Where the time goes: a TensorFlow profiler trace of one benchmark case, summed per op type.

    python benchmarks/profile_ops.py swin_t_train        # CoSwin-T (Swin mode) fwd + bwd, batch 8
    python benchmarks/profile_ops.py florence_step_bf16  # FlorenceCLIP-T UniCL step, mixed_bfloat16
    python benchmarks/profile_ops.py swin_t_forward --filter StridedSlice   # one op type, by name
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/profile_ops.py swin_t_forward --batch 1   # AVX2-emulated

Runs the case from `benchmarks/tf_cases.py` twice to warm up, traces `--steps` steps with
`tf.profiler.experimental`, reads the XPlane protobuf it writes (no TensorBoard needed) and prints
the executed TensorFlow ops grouped by type with their share of the op time. The trace directory
(`--logdir`) can also be opened in TensorBoard's profile plugin. The first line names the machine
(`machine_info.py`) and the ISA-limiting variables in effect (docs/benchmarks.md: AVX2 emulation).
"""

import argparse
import collections
import glob
import os
import re
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.append(REPO)

CASES = {
    "swin_t_forward": ("swin", {"batch": 8, "train": False}),
    "swin_t_train": ("swin", {"batch": 8, "train": True}),
    "coswin_t_conv_forward": ("swin", {"batch": 8, "train": False, "patch_embedding": "conv"}),
    "coswin_t_conv_train": ("swin", {"batch": 8, "train": True, "patch_embedding": "conv"}),
    "text_train": ("clip_text", {"batch": 8, "train": True}),
    "florence_step_f32": ("florence_step", {"batch": 8, "dtype": "float32",
                                            "config": {"preset": "florence_tiny"}}),
    "florence_step_bf16": ("florence_step", {"batch": 8, "dtype": "mixed_bfloat16",
                                             "config": {"preset": "florence_tiny"}}),
}


def _swin_checkpoint(directory):
    """Saves a random transformers Swin-T (the TF case converts it)."""
    import transformers

    transformers.SwinModel(transformers.SwinConfig()).save_pretrained(directory)


def _clip_text_checkpoint(directory):
    import transformers

    from benchmarks.plan import CLIP_TEXT

    transformers.CLIPTextModel(transformers.CLIPTextConfig(**CLIP_TEXT)).save_pretrained(directory)


def op_table(logdir):
    """`{op_type: (milliseconds, count)}` and `{op_name: milliseconds}` from an XPlane trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not files:
        raise FileNotFoundError(f"No *.xplane.pb under {logdir}")
    space = xplane_pb2.XSpace()
    with open(sorted(files)[-1], "rb") as f:
        space.ParseFromString(f.read())
    by_type, counts, by_name = collections.Counter(), collections.Counter(), collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU") and "GPU" not in plane.name:
            continue
        for line in plane.lines:
            if line.name == "python":
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or "::" in name:  # executor bookkeeping, thread pools
                    continue
                op_name, op_type = name.rsplit(":", 1)
                milliseconds = event.duration_ps / 1e9
                by_type[op_type] += milliseconds
                counts[op_type] += 1
                by_name[(op_type, re.sub(r"_\d+", "", op_name))] += milliseconds
    return {k: (v, counts[k]) for k, v in by_type.items()}, by_name


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--filter", default=None, help="also list the ops of this type by name")
    parser.add_argument("--logdir", default=None)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the case's, 8)")
    args = parser.parse_args(argv)
    if args.batch is not None and args.batch < 1:
        parser.error(f"--batch must be >= 1. Received: --batch={args.batch}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from benchmarks import machine_info

    machine = machine_info.collect()
    limits = {k: v for k, v in machine["env"].items()
              if v is not None and k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS",
                                         "XLA_FLAGS", "TF_ENABLE_ONEDNN_OPTS")}
    print(f"machine: {machine_info.describe(machine)} [{machine['generation_key']}]; ISA limits: "
          + (", ".join(f"{k}={v}" for k, v in limits.items()) or "none"))
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from benchmarks import tf_cases

    kind, spec = CASES[args.case]
    scratch = tempfile.TemporaryDirectory(prefix="florence_profile_")
    spec = dict(spec)
    if args.batch is not None:
        spec["batch"] = args.batch
    if kind in ("swin", "clip_text"):
        spec["model_dir"] = os.path.join(scratch.name, kind)
        (_swin_checkpoint if kind == "swin" else _clip_text_checkpoint)(spec["model_dir"])
    case = tf_cases.CASES[kind](spec, {})
    case.step()
    case.step()
    logdir = args.logdir or os.path.join(scratch.name, "trace")
    tf.profiler.experimental.start(logdir)
    for _ in range(args.steps):
        case.step()
    tf.profiler.experimental.stop()
    by_type, by_name = op_table(logdir)
    total = sum(ms for ms, _ in by_type.values())
    print(f"{args.case}, batch {spec['batch']}: {total / args.steps:.1f} ms of op time per step "
          f"({args.steps} steps)")
    print(f"{'op type':34s} {'ms/step':>9s} {'share':>6s} {'count':>6s}")
    for op_type, (ms, count) in sorted(by_type.items(), key=lambda kv: -kv[1][0])[:args.top]:
        print(f"{op_type[:34]:34s} {ms / args.steps:9.1f} {ms / total:6.1%} {count // args.steps:6d}")
    if args.filter:
        print(f"\n{args.filter} by op name:")
        rows = sorted(((ms, name) for (op_type, name), ms in by_name.items()
                       if op_type == args.filter), reverse=True)
        for ms, name in rows[:args.top]:
            print(f"  {ms / args.steps:9.1f}  {name[-110:]}")
    scratch.cleanup()


if __name__ == "__main__":
    main()

"""DCNv2 (`ModulatedDeformableConv2D`) forward + backward vs a plain 3x3 `Conv2D` of the same shape, side by side.

    nice -n 5 python benchmarks/dcn_v2_benchmark.py [--batch 1] [--height 100] [--width 152] [--channels 256]
        [--rounds 5] [--threads 2] [--xla both|on|off] [--quick] [--output result.json]

Issue #13 item 7: at a Dynamic Head level (100 x 152 x 256: stride 8 of an 800 x 1216 image) the DCNv2 layer's
forward + backward must take at most 2x the time of a plain 3x3 convolution. Members, all in one process, take turns
(interleaved rounds, the order rotating); each round's time is the median of `--iters` steps, the ratio is taken per
round and its median, min and max over rounds are reported, from wall time and from this process's CPU time (on a
machine shared with other jobs, CPU time is the steadier of the two: PERF.md). A step is `mean(y ** 2)` and its
gradients w.r.t. the input and every weight (and the offsets and modulation when they are inputs):

* `conv2d`: `keras.layers.Conv2D(C, 3, padding="same")`.
* `dcn_v2`: `ModulatedDeformableConv2D(C)` with its own offset/modulation convolution (random weights giving offsets
  of about a pixel: zero offsets would read memory in order and flatter the gathers).
* `dcn_v2_given_offsets`: the functional DCNv2 with offsets and modulation given (how Dynamic Head uses it: one offset
  convolution per level serves three DCNs).

`--xla both` measures every member with and without `tf.function(jit_compile=True)`; each DCN is compared with the
convolution of the same setting and with the fastest convolution.

The same cases are registered with the harness (`python benchmarks/run_all.py --only dcn_v2`): `CASES` (kinds of the
TensorFlow worker) and `groups()` (the groups `run_all.py` adds to its plan). TensorFlow is imported only inside the
cases, so the harness's driver process stays free of it.
"""

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.append(REPO)

from benchmarks.interleaved_rounds import publish  # noqa: E402
from benchmarks.interleaved_rounds import ratio_row  # noqa: E402
from benchmarks.interleaved_rounds import summary as _summary  # noqa: E402
from benchmarks.interleaved_rounds import time_rounds  # noqa: E402

DYHEAD_LEVEL = {"batch": 1, "height": 100, "width": 152, "channels": 256}
QUICK_LEVEL = {"batch": 1, "height": 12, "width": 18, "channels": 16}
OFFSET_WEIGHT_STDDEV = 0.02  # at 256 channels and unit-variance inputs: offsets of about 1 pixel


class _Case:
    """One compiled forward + backward step on fixed inputs (traced at construction, never while timed)."""

    def __init__(self, spec):
        import keras
        import numpy as np
        import tensorflow as tf

        from florence_keras.layers.modulated_deformable_conv2d import ModulatedDeformableConv2D
        from florence_keras.layers.modulated_deformable_conv2d import modulated_deformable_conv2d

        batch, height, width, channels = (spec[k] for k in ("batch", "height", "width", "channels"))
        rng = np.random.default_rng(0)
        self.spec = spec
        self.inputs = [tf.constant(rng.normal(size=(batch, height, width, channels)).astype("float32"))]
        kind = spec["kind"]
        self.extra = {}
        if kind == "conv2d":
            layer = keras.layers.Conv2D(channels, 3, padding="same")
            layer.build(self.inputs[0].shape)

            def forward(x):
                return layer(x)
        else:
            layer = ModulatedDeformableConv2D(channels)
            layer.build(self.inputs[0].shape)
            layer.offset_mask.set_weights(
                [rng.normal(scale=OFFSET_WEIGHT_STDDEV, size=w.shape).astype("float32")
                 for w in layer.offset_mask.get_weights()])
            offset, modulation = layer.offsets_and_modulation(self.inputs[0])
            self.extra = {"offset_std_px": float(np.std(offset)), "modulation_mean": float(np.mean(modulation))}
            if kind == "dcn_v2":
                def forward(x):
                    return layer(x)
            elif kind == "dcn_v2_given_offsets":
                self.inputs += [tf.constant(offset), tf.constant(modulation)]

                def forward(x, offset, modulation):
                    return modulated_deformable_conv2d(x, offset, modulation, layer.kernel, layer.bias)
            else:
                raise ValueError(f"Unknown DCNv2 benchmark kind {kind!r}")
        variables = [v for v in layer.trainable_variables if kind != "dcn_v2_given_offsets" or "offset" not in v.path]

        @tf.function(jit_compile=bool(spec.get("xla", False)))
        def step(*inputs):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                loss = tf.reduce_mean(tf.square(forward(*inputs)))
            return loss, tape.gradient(loss, list(inputs) + variables)

        self._step = step
        self.params = int(sum(np.prod(v.shape) for v in variables))
        step(*self.inputs)  # trace + compile

    def step(self):
        loss, grads = self._step(*self.inputs)
        # Fetching the input's gradient waits for the whole backward pass.
        float(loss)
        grads[0].numpy()

    def info(self):
        import keras
        import tensorflow as tf

        s = self.spec
        conv_flops = 2 * s["batch"] * s["height"] * s["width"] * 9 * s["channels"] * s["channels"]
        return {"flops_per_step": 3 * conv_flops, "items_per_step": s["batch"], "params": self.params,
                "tensorflow": tf.__version__, "keras": keras.__version__,
                "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(), **self.extra}


def _make(kind):
    def factory(spec, cases):
        return _Case(dict(spec, kind=kind))

    return factory


# Kinds for the harness's TensorFlow worker (benchmarks/tf_cases.py CASES).
CASES = {"conv2d_3x3": _make("conv2d"), "dcn_v2": _make("dcn_v2"),
         "dcn_v2_given_offsets": _make("dcn_v2_given_offsets")}


def groups(quick, only=None):
    """The harness groups (`run_all.py`): DCNv2 vs Conv2D, forward + backward, without XLA."""
    level = QUICK_LEVEL if quick else DYHEAD_LEVEL
    shape = f"{level['height']}x{level['width']}x{level['channels']}, batch {level['batch']}"
    members = [{"label": label, "side": "tf", "kind": kind, "spec": dict(level)}
               for label, kind in (("conv2d", "conv2d_3x3"), ("dcn_v2", "dcn_v2"),
                                   ("dcn_v2_given_offsets", "dcn_v2_given_offsets"))]
    group = {"name": "dcn_v2_train", "title": f"DCNv2 vs Conv2D 3x3, forward + backward, {shape}",
             "members": members, "parity": None,
             # The report's targets are lower bounds: conv time / DCN time >= 0.5 is "DCN <= 2x the conv".
             "metrics": [{"name": "Conv2D time / DCNv2 time (>= 0.5: DCNv2 <= 2x)", "type": "time_ratio",
                          "num": "conv2d", "den": "dcn_v2", "target": 0.5},
                         {"name": "Conv2D time / DCNv2-with-given-offsets time", "type": "time_ratio",
                          "num": "conv2d", "den": "dcn_v2_given_offsets", "target": 0.5}]}
    return [group] if not only or only in group["name"] else []


def run(level, rounds=5, iters=2, xla="both", log=print):
    """Measures every member in interleaved rounds; returns the JSON-able result."""
    settings = {"off": [False], "on": [True], "both": [False, True]}[xla]
    cases = {}
    for jit in settings:
        for kind in ("conv2d", "dcn_v2", "dcn_v2_given_offsets"):
            name = kind + (" (XLA)" if jit else "")
            start = time.perf_counter()
            cases[name] = _Case(dict(level, kind=kind, xla=jit))
            log(f"  built {name} in {time.perf_counter() - start:.1f} s")
    wall, cpu = time_rounds(cases, rounds, iters, log)
    names = list(cases)
    ratios = []
    for name in names:
        if name.startswith("conv2d"):
            continue
        same = "conv2d" + (" (XLA)" if name.endswith("(XLA)") else "")
        for den, label in ((same, "vs the Conv2D of the same setting"), ("best", "vs the faster Conv2D")):
            def per_round(times):
                convs = [n for n in names if n.startswith("conv2d")] if den == "best" else [den]
                return [times[name][i] / min(times[c][i] for c in convs) for i in range(rounds)]

            if den == "best" and len(settings) == 1:
                continue
            ratios.append({"member": name, "against": label, "cpu_time_ratio": _summary(per_round(cpu)),
                           "wall_time_ratio": _summary(per_round(wall))})
    return {"level": level, "rounds": rounds, "iters": iters,
            "members": {n: {"cpu_s": _summary(cpu[n]), "wall_s": _summary(wall[n]), **cases[n].info()}
                        for n in names},
            "ratios": ratios}


def markdown(result, machine_line):
    lvl = result["level"]
    lines = [f"DCNv2 vs Conv2D 3x3, forward + backward, {lvl['height']}x{lvl['width']}x{lvl['channels']}, "
             f"batch {lvl['batch']}; {result['rounds']} interleaved rounds; {machine_line}", "",
             "| member | CPU s (median) | wall s (median) |", "|---|---|---|"]
    for name, m in result["members"].items():
        lines.append(f"| {name} | {m['cpu_s']['median']:.3f} | {m['wall_s']['median']:.3f} |")
    lines += ["", "| DCNv2 member | against | CPU-time ratio median [min, max] | wall-time ratio median [min, max] |",
              "|---|---|---|---|"]
    lines += [ratio_row(r["member"], r["against"], r["cpu_time_ratio"], r["wall_time_ratio"]) for r in result["ratios"]]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=DYHEAD_LEVEL["batch"])
    parser.add_argument("--height", type=int, default=DYHEAD_LEVEL["height"])
    parser.add_argument("--width", type=int, default=DYHEAD_LEVEL["width"])
    parser.add_argument("--channels", type=int, default=DYHEAD_LEVEL["channels"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=2, help="steps per member per round (their median counts)")
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra/inter-op threads (0: default)")
    parser.add_argument("--xla", choices=("off", "on", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="a tiny level: checks the script, measures nothing")
    parser.add_argument("--output", default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    level = dict(QUICK_LEVEL) if args.quick else {"batch": args.batch, "height": args.height, "width": args.width,
                                                   "channels": args.channels}
    if args.rounds < 1 or args.iters < 1:
        parser.error(f"--rounds and --iters must be >= 1. Received: {args.rounds}, {args.iters}")
    import tensorflow as tf

    if args.threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    result = run(level, rounds=args.rounds, iters=args.iters, xla=args.xla,
                 log=lambda line: print(line, file=sys.stderr, flush=True))
    return publish(result, markdown, "dcn_v2_benchmark.py", argv, args.threads, args.output)

if __name__ == "__main__":
    main()

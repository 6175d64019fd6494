"""Before/after a change, side by side: two florence_keras source trees on one case, interleaved.

    python benchmarks/compare_trees.py BEFORE_ROOT AFTER_ROOT swin_t_train [--rounds 8]

Each root is a directory that holds a `florence_keras/` package (e.g. a copy of the tree taken
before a change, and the repository itself). Two TensorFlow workers, one per tree, run the same
case (`profile_ops.CASES`: swin_t_forward, swin_t_train, coswin_t_conv_train, text_train,
florence_step_f32, florence_step_bf16) in alternating order; the result is the median over rounds
of time(before) / time(after) — the speed-up of the change — and the largest difference between
the two trees' outputs for the same input and weights (a change that speeds up must not change the
numbers beyond float rounding). Robust to a busy machine in the same way as run_all.py.
"""

import argparse
import os
import statistics
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.append(REPO)

from benchmarks import profile_ops  # noqa: E402
from benchmarks import run_all  # noqa: E402


def compare(before_root, after_root, case, rounds=6, threads=2, iters=2, log=print):
    """Runs the comparison; returns a dict with per-round speed-ups and their summary."""
    for root in (before_root, after_root):
        if not os.path.isdir(os.path.join(root, "florence_keras")):
            raise ValueError(f"{root!r} does not hold a florence_keras/ package. "
                             f"Received: before_root={before_root!r}, after_root={after_root!r}")
    if case not in profile_ops.CASES:
        raise ValueError(f"Unknown case {case!r}. Known: {sorted(profile_ops.CASES)}")
    kind, spec = profile_ops.CASES[case]
    scratch = tempfile.TemporaryDirectory(prefix="florence_compare_")
    spec = dict(spec)
    if kind in ("swin", "clip_text"):
        spec["model_dir"] = os.path.join(scratch.name, kind)
        (profile_ops._swin_checkpoint if kind == "swin"
         else profile_ops._clip_text_checkpoint)(spec["model_dir"])
    workers = {}
    try:
        for name, root in (("before", before_root), ("after", after_root)):
            log(f"starting the {name} worker ({root})")
            workers[name] = run_all.Worker("tf", threads, source_root=os.path.abspath(root))
        infos = {}
        for name, w in workers.items():
            answer = w.call({"op": "setup", "key": case, "kind": kind, "spec": spec},
                            run_all.SETUP_TIMEOUT_S)
            infos[name] = answer["info"]
            log(f"  {name}: {infos[name].get('florence_keras_file')}")
        medians = {name: [] for name in workers}
        order = ["before", "after"]
        for index in range(rounds + 1):
            for name in (order if index % 2 == 0 else order[::-1]):
                times = workers[name].call({"op": "run", "key": case, "iters": iters}, 3600)["times"]
                if index > 0:  # round 0 warms up
                    medians[name].append(statistics.median(times))
            if index > 0:
                log(f"  round {index}/{rounds}: before {medians['before'][-1] * 1e3:.1f} ms, "
                    f"after {medians['after'][-1] * 1e3:.1f} ms")
    finally:
        for w in workers.values():
            w.close()
        scratch.cleanup()
    speedups = [b / a for b, a in zip(medians["before"], medians["after"])]
    result = {"case": case, "speedup": statistics.median(speedups), "per_round": speedups,
              "before_s": medians["before"], "after_s": medians["after"]}
    outputs = [infos[n].get("output") for n in ("before", "after")]
    if all(outputs):
        result["max_abs_output_difference"] = max(
            abs(x - y) for row_a, row_b in zip(*outputs) for x, y in zip(row_a, row_b))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before_root")
    parser.add_argument("after_root")
    parser.add_argument("case", choices=sorted(profile_ops.CASES))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    result = compare(args.before_root, args.after_root, args.case, args.rounds, args.threads,
                     args.iters)
    spread = f"[{min(result['per_round']):.2f}–{max(result['per_round']):.2f}]"
    print(f"{args.case}: after is {result['speedup']:.2f}x as fast as before {spread}"
          + (f"; max |output difference| {result['max_abs_output_difference']:.1e}"
             if "max_abs_output_difference" in result else ""))
    return result


if __name__ == "__main__":
    main()

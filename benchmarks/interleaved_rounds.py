"""Interleaved rounds in one process: every case runs a few steps in turn, the order rotating between rounds.

Shared by the single-process benchmarks (`dcn_v2_benchmark.py`, `detector_inference_benchmark.py`). A round's time
for a case is the median of its `iters` steps, by wall clock and by this process's CPU time (on a shared machine CPU
time is the steadier of the two: PERF.md). Ratios are taken per round by the caller, then summarised.
"""

import json
import os
import statistics
import sys
import time


def summary(values):
    """`{"median", "min", "max", "n"}` of a list of numbers."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def ratio_row(member, against, cpu_ratio, wall_ratio):
    """A Markdown table row `| member | against | **cpu**x [min, max] | wall x [min, max] |` from two `summary`s."""
    c, w = cpu_ratio, wall_ratio
    return (f"| {member} | {against} | **{c['median']:.2f}x** [{c['min']:.2f}, {c['max']:.2f}] | "
            f"{w['median']:.2f}x [{w['min']:.2f}, {w['max']:.2f}] |")


def time_rounds(cases, rounds, iters=1, log=print, warmup=False):
    """Times `cases` (`{name: object with step()}`) in `rounds` interleaved rounds.

    Args:
        cases: dict, name -> a case whose `step()` returns when its work is done.
        rounds: int >= 1.
        iters: int >= 1, steps per case per round; their median is the round's time.
        log: callable taking one line (a line per round).
        warmup: bool, one untimed step of every case first (the first step after other cases were set up can pay a
            one-off cost).

    Returns:
        `(wall, cpu)`: dicts name -> list of per-round seconds.

    Example:
    >>> class Case:
    ...     def step(self):
    ...         pass
    >>> wall, cpu = time_rounds({"a": Case(), "b": Case()}, rounds=3, log=lambda line: None)
    >>> [len(wall["a"]), len(cpu["b"])]
    [3, 3]
    """
    names = list(cases)
    if warmup:
        for name in names:
            cases[name].step()
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            walls, cpus = [], []
            for _ in range(iters):
                w0, c0 = time.perf_counter(), time.process_time()
                cases[name].step()
                walls.append(time.perf_counter() - w0)
                cpus.append(time.process_time() - c0)
            wall[name].append(statistics.median(walls))
            cpu[name].append(statistics.median(cpus))
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {cpu[n][-1]:.3f}s cpu" for n in names))
    return wall, cpu


def publish(result, markdown, script, argv, threads, output=None, **extra):
    """Ends a benchmark script: records the machine (`machine_info`), threads, command line and load average in
    `result` (with `extra`), prints `markdown(result, machine_line)`, writes `result` as JSON to `output` if given.
    Returns `result`."""
    from benchmarks import machine_info

    machine = machine_info.collect()
    result.update({"machine": machine, "threads": threads,
                   "command": f"python benchmarks/{script} " + " ".join(sys.argv[1:] if argv is None else argv),
                   "load_average_end": os.getloadavg(), **extra})
    print(markdown(result, f"{machine_info.describe(machine)}, {threads} threads"))
    if output:
        with open(output, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    return result

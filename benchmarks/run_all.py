"""Runs every florence_keras benchmark and writes benchmarks/results/<CPU generation>/latest.{md,json}.

    python benchmarks/run_all.py [--quick] [--gpu] [--rounds N] [--threads 2] [--only NAME] [--dry_run]

Method (shared/docs/PERF.md): florence_keras (TensorFlow) and the reference (transformers, torch
CPU) live in two long-lived worker processes with the same intra-op thread count and take turns:
in each round every member of a group runs a few iterations while the others wait, the order
rotating between rounds. A round's time for a member is the median of its iterations; every ratio
is computed per round and the median over rounds is reported with its min and max. Absolute
times on a shared machine are noise; ratios measured side by side are the result. Nothing here
asserts a time.

The reference runs twice, in two more workers: as configured by default and tuned
(`plan.with_reference_configs`, `worker.settings_for`); a speed-up is taken against the faster of
the two in each round. Every result records the machine (`machine_info.py`: CPU model, ISA flags,
framework builds, thread settings) and is written under the CPU generation's key
(`benchmarks/results/amd-zen4-avx512_bf16/latest.md`): results of different CPUs are never mixed.

* `--quick`: tiny models, 2 rounds, memory probes run alongside — checks the harness end to end
  (a few minutes on a busy 2-core machine); writes `quick.{md,json}`, never `latest`.
* `--gpu`: only the accelerator plan (`plan.build_gpu_plan`: CoSwin-B UniCL step images/s and
  bfloat16 MFU, XLA on/off, input pipeline throughput) within `plan.GPU_TIME_BUDGET_S` (8 min);
  writes `latest_gpu.{md,json}` under the GPU's key. `--gpu --quick --allow-cpu` runs its tiny
  version on a CPU (a check of the script, not a measurement).
* `--dry_run`: prints the plan (groups, members, sizes, time estimates) and runs nothing.
* Gradient-cache memory: one subprocess per measurement (peak RSS is per process).
"""

import argparse
import datetime
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    # Appended, not prepended: a PYTHONPATH entry (another florence_keras tree) wins.
    sys.path.append(REPO)

from benchmarks import dcn_v2_benchmark  # noqa: E402
from benchmarks import detector_inference_benchmark  # noqa: E402
from benchmarks import machine_info  # noqa: E402
from benchmarks import plan as plan_lib  # noqa: E402
from benchmarks import report  # noqa: E402
from benchmarks import worker  # noqa: E402

SETUP_TIMEOUT_S = 1800
READY_TIMEOUT_S = 600


class WorkerError(RuntimeError):
    """A worker answered with an exception, died, or timed out."""


class Worker:
    """One spawned worker process and its pipe."""

    def __init__(self, side, threads, source_root=None):
        context = multiprocessing.get_context("spawn")
        self.side = side
        self.conn, child = context.Pipe()
        self.process = context.Process(target=worker.serve,
                                       args=(child, side, threads, source_root),
                                       name=f"bench-{side}", daemon=True)
        self.process.start()
        child.close()
        self.broken = None
        self.info = self.call(None, READY_TIMEOUT_S)

    def call(self, message, timeout):
        if self.broken:
            # A late answer to the timed-out request would be taken for the answer to this one.
            raise WorkerError(f"the {self.side} worker is not used any more: {self.broken}")
        if message is not None:
            self.conn.send(message)
        if not self.conn.poll(timeout):
            self.broken = f"it did not answer within {timeout:.0f} s"
            raise WorkerError(f"the {self.side} worker did not answer within {timeout:.0f} s")
        try:
            answer = self.conn.recv()
        except EOFError as error:
            raise WorkerError(f"the {self.side} worker died (exit code "
                              f"{self.process.exitcode})") from error
        if "error" in answer:
            raise WorkerError(answer["error"])
        return answer

    def close(self):
        if self.process.is_alive():
            try:
                self.conn.send({"op": "close"})
                self.conn.poll(30)
            except (BrokenPipeError, OSError):
                pass
            self.process.join(30)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(10)


BASELINE_SIDE = "tf_baseline"
BASELINE_SUFFIX = " (baseline)"
BASELINE_KINDS = ("swin", "clip_text", "florence_step")


def add_baseline(groups, root):
    """Adds to each group a twin of every florence_keras model member run from tree `root`.

    The twin (label + `BASELINE_SUFFIX`) runs in a third worker that imports `root`'s
    florence_keras; every metric that names a twinned member is repeated for the twin. Before and
    after a change are then measured in the same interleaved rounds, against the same reference.
    """
    result = []
    for group in groups:
        group = dict(group)
        twins = {}
        members = list(group["members"])
        for member in group["members"]:
            if member["side"] == "tf" and member.get("kind") in BASELINE_KINDS:
                twin = dict(member, side=BASELINE_SIDE, label=member["label"] + BASELINE_SUFFIX)
                twin.pop("key", None)
                twin["spec"] = dict(member["spec"])
                twins[member["label"]] = twin["label"]
                members.append(twin)
        metrics = list(group["metrics"])
        for metric in group["metrics"]:
            names = {k: metric[k] for k in ("num", "den", "step", "peak") if k in metric}
            if any(label in twins for v in names.values() for label in _labels(v)):
                twin = dict(metric, name=metric["name"] + BASELINE_SUFFIX)
                twin.update({k: [twins.get(label, label) for label in v] if isinstance(v, list)
                             else twins.get(v, v) for k, v in names.items()})
                metrics.append(twin)
        group["members"], group["metrics"] = members, metrics
        if group.get("parity") and group["parity"][0] in twins:
            group["baseline_parity"] = [twins[group["parity"][0]], group["parity"][0]]
        result.append(group)
    return result


def _member_key(group, member):
    return member.get("reuse") or member.get("key") or f"{group['name']}/{member['label']}"


def _git_state():
    def read(args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=30, check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = read(["status", "--porcelain", "--", "florence_keras", "benchmarks"])
    return {"commit": read(["rev-parse", "HEAD"]),
            "uncommitted_changes": [line[3:] for line in changed.splitlines()]}


def _summary(values):
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "n": len(values)}


def _round_metric(metric, times, infos, best):
    """One round's value of `metric` from the members' round times.

    `best` maps labels to their fastest iteration in the group: MFU divides by the best matmul
    rate of the run (PERF.md), not by one round's, which a busy neighbour can slow down more than
    the model (a single big op waits for its slowest thread).
    """
    kind = metric["type"]

    def time(field):  # a list of labels: the fastest of them this round
        return _fastest(times, metric[field])

    def info(field):  # members of one list do the same work (same FLOPs and items)
        return infos[_labels(metric[field])[0]]

    if kind == "time_ratio":
        return time("num") / time("den")
    if kind == "mfu":
        achieved = info("step")["flops_per_step"] / time("step")
        return achieved / (info("peak")["flops_per_step"] / _fastest(best, metric["peak"]))
    if kind == "flop_rate_ratio":
        num = info("num")["flops_per_step"] / time("num")
        den = info("den")["flops_per_step"] / time("den")
        return den / num
    if kind == "throughput_ratio":
        num = info("num")["items_per_step"] / time("num")
        den = info("den")["items_per_step"] / time("den")
        return num / den
    if kind == "throughput":
        return info("step")["items_per_step"] / time("step")
    raise ValueError(f"Unknown metric type {kind!r}")


def _labels(value):
    """A metric field's member labels: one label or a list of them."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _fastest(times, value):
    return min(times[label] for label in _labels(value))


def _metric_labels(metric):
    return [label for k in ("num", "den", "step", "peak") if metric.get(k)
            for label in _labels(metric[k])]


def run_group(group, workers, known, rounds, target_round_s, max_iters, log, warmup_rounds=0,
              setup_timeout_s=SETUP_TIMEOUT_S):
    """Sets a group up, runs its interleaved rounds and returns its result record.

    The first `warmup_rounds` rounds run like the others but are left out of every statistic
    (first-round effects: caches, allocator, the other worker's pages).
    """
    started = time.perf_counter()
    result = {"name": group["name"], "title": group["title"], "members": {}, "metrics": [],
              "errors": []}
    infos, singles = {}, {}
    # Set up the torch members first: they write the checkpoints the TF members convert.
    for member in sorted(group["members"], key=lambda m: m["side"] not in worker.REFERENCE_SIDES):
        label, key = member["label"], _member_key(group, member)
        if "reuse" in member:
            if key not in known:
                result["errors"].append(f"{label}: reused case {key!r} is not set up")
                continue
            infos[label], singles[label] = known[key]
            continue
        log(f"  setup {label} ({member['side']}: {member['kind']})")
        try:
            answer = workers[member["side"]].call(
                {"op": "setup", "key": key, "kind": member["kind"], "spec": member["spec"]},
                setup_timeout_s)
        except WorkerError as error:
            result["errors"].append(f"{label}: {error}")
            log(f"  ! {label} failed: {str(error).strip().splitlines()[-1]}")
            continue
        info = answer["info"]
        if "items_per_step" not in info and "batch" in member["spec"]:
            info["items_per_step"] = member["spec"]["batch"]
        infos[label], singles[label] = info, answer["single_s"]
        known[key] = (info, answer["single_s"])
    ready = [m for m in group["members"] if m["label"] in infos]
    iters = {m["label"]: max(1, min(max_iters, round(target_round_s / max(singles[m["label"]], 1e-6))))
             for m in ready}
    samples = {m["label"]: [] for m in ready}
    round_medians = {m["label"]: [] for m in ready}
    round_loads = []
    total_rounds = rounds + warmup_rounds
    for index in range(total_rounds if ready else 0):
        shift = index % len(ready)
        order = ready[shift:] + ready[:shift]
        round_loads.append(os.getloadavg()[0])
        for member in order:
            label = member["label"]
            try:
                answer = workers[member["side"]].call(
                    {"op": "run", "key": _member_key(group, member), "iters": iters[label]},
                    max(300.0, 30 * iters[label] * singles[label]))
            except WorkerError as error:
                result["errors"].append(f"{label} round {index}: {error}")
                continue
            if index < warmup_rounds:
                continue
            samples[label].extend(answer["times"])
            round_medians[label].append(statistics.median(answer["times"]))
        if index < warmup_rounds:
            log(f"  warm-up round {index + 1}/{warmup_rounds} done")
            continue
        log(f"  round {index + 1 - warmup_rounds}/{rounds}: " + ", ".join(
            f"{m['label']} {round_medians[m['label']][-1] * 1e3:.1f} ms"
            for m in ready if len(round_medians[m["label"]]) == index + 1 - warmup_rounds))
    complete = [i for i in range(rounds) if all(len(round_medians[m["label"]]) > i for m in ready)]
    for member in ready:
        label = member["label"]
        info = infos[label]
        record = {"side": member["side"], "kind": member.get("kind", "reuse"),
                  "spec": member.get("spec", {"reuse": member.get("reuse")}),
                  "iterations_per_round": iters[label], "info": {k: v for k, v in info.items()
                                                                  if k != "output"}}
        if samples[label]:
            record["seconds"] = _summary(samples[label])
            record["round_medians_s"] = round_medians[label]
            median = record["seconds"]["median"]
            items = info.get("items_per_step")
            if items:
                record["items_per_s"] = items / median
            if "flops_per_step" in info:
                record["gflop_per_s"] = info["flops_per_step"] / median / 1e9
        result["members"][label] = record
    for metric in group["metrics"]:
        names = _metric_labels(metric)
        entry = dict(metric)
        if not complete or any(n not in infos for n in names):
            entry["missing"] = [n for n in names if n not in infos] or ["no complete round"]
        else:
            best = {n: min(samples[n]) for n in names}
            values = [_round_metric(metric, {n: round_medians[n][i] for n in names}, infos, best)
                      for i in complete]
            entry.update(_summary(values))
            entry["per_round"] = values
            if metric["type"] == "mfu":
                peak = _labels(metric["peak"])[0]
                entry["peak_gflop_per_s"] = infos[peak]["flops_per_step"] / best[peak] / 1e9
            if metric["type"] == "time_ratio":
                # Best against best: the least disturbed iteration of each side.
                entry["best_vs_best"] = (_fastest(best, metric["num"])
                                         / _fastest(best, metric["den"]))
            if metric.get("target") is not None:
                entry["met"] = entry["median"] >= metric["target"]
        result["metrics"].append(entry)
    parity = group.get("parity")
    if parity and all(p in infos and "output" in infos[p] for p in parity):
        a, b = (infos[p]["output"] for p in parity)
        flat_a = [v for row in a for v in row]
        flat_b = [v for row in b for v in row]
        result["parity_max_abs_diff"] = max(abs(x - y) for x, y in zip(flat_a, flat_b))
    twin = group.get("baseline_parity")
    if twin and all(p in infos and "output" in infos[p] for p in twin):
        a, b = (infos[p]["output"] for p in twin)
        result["baseline_max_abs_diff"] = max(
            abs(x - y) for row_a, row_b in zip(a, b) for x, y in zip(row_a, row_b))
    result["load_average"] = _summary(round_loads) if round_loads else None
    result["wall_s"] = time.perf_counter() - started
    return result


def _start_probe(spec, env):
    command = [sys.executable, "-m", "benchmarks.memory_probe", json.dumps(spec)]
    cwd = tempfile.TemporaryDirectory()  # keeps the current directory out of sys.path
    process = subprocess.Popen(command, cwd=cwd.name, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    return process, cwd


def _finish_probe(process, cwd, record, log):
    try:
        stdout, stderr = process.communicate(timeout=1800)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        record["error"] = "timed out after 1800 s"
        cwd.cleanup()
        return record
    cwd.cleanup()
    line = next((ln for ln in stdout.splitlines() if ln.startswith("MEMORY_PROBE ")), None)
    if process.returncode != 0 or line is None:
        record["error"] = (stderr.strip().splitlines() or ["no output"])[-1]
        log(f"  {record['label']}: failed: {record['error']}")
    else:
        record.update(json.loads(line[len("MEMORY_PROBE "):]))
        log(f"  {record['label']}: peak RSS {record['peak_rss_mib']:.0f} MiB "
            f"(after build {record['rss_built_mib']:.0f} MiB)")
    return record


def run_memory(memory, threads, log, parallel=2):
    """Gradient-cache peak RSS, one subprocess per (batch, mode), `parallel` at a time.

    Peak RSS is per process, so neighbours do not change it; running two at once only saves
    wall time. Without the cache, activation memory grows with B: each larger batch is
    extrapolated from the two before it and skipped if it would not fit comfortably.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), REPO) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    available_mib = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable"):
                    available_mib = int(line.split()[1]) / 1024
    except OSError:
        pass

    def record_for(batch, chunk):
        label = f"B={batch} " + (f"cache chunk={chunk}" if chunk else "no cache")
        spec = {"batch": batch, "chunk": chunk, "config": memory["config"], "threads": threads}
        return {"batch": batch, "chunk": chunk, "label": label,
                "command": "python -m benchmarks.memory_probe '" + json.dumps(spec) + "'"}, spec

    probes = []
    queue = [(b, memory["chunk"]) for b in memory["cache_batches"]]
    queue += [(b, None) for b in memory["full_batches"][:2]]
    while queue:
        running = []
        for batch, chunk in queue[:parallel]:
            record, spec = record_for(batch, chunk)
            running.append((record,) + _start_probe(spec, env))
        queue = queue[parallel:]
        for record, process, cwd in running:
            probes.append(_finish_probe(process, cwd, record, log))
    for batch in memory["full_batches"][2:]:
        record, spec = record_for(batch, None)
        previous = [p for p in probes if p["chunk"] is None and "peak_rss_mib" in p]
        if len(previous) >= 2 and available_mib:
            (b0, m0), (b1, m1) = [(p["batch"], p["peak_rss_mib"]) for p in previous[-2:]]
            predicted = m1 + (m1 - m0) / (b1 - b0) * (batch - b1)
            record["predicted_peak_rss_mib"] = predicted
            if predicted > 0.5 * available_mib:
                record["skipped"] = (f"predicted peak {predicted:.0f} MiB > half the available "
                                     f"{available_mib:.0f} MiB")
                log(f"  {record['label']}: skipped ({record['skipped']})")
                probes.append(record)
                continue
        probes.append(_finish_probe(*_start_probe(spec, env), record, log))
    cache = {p["batch"]: p["peak_rss_mib"] for p in probes if p["chunk"] and "peak_rss_mib" in p}
    batches = memory["cache_batches"]
    result = {"name": "gradient_cache_memory", "probes": probes, "chunk": memory["chunk"],
              "config": memory["config"], "target": memory["target"]}
    if batches[0] in cache and batches[-1] in cache:
        ratio = cache[batches[-1]] / cache[batches[0]]
        result["ratio"] = {"name": f"peak RSS B={batches[-1]} / B={batches[0]} (cache)",
                           "value": ratio, "target": memory["target"],
                           "met": ratio <= memory["target"]}
    return result


def _slug(text):
    return "-".join("".join(c if c.isalnum() else " " for c in str(text).lower()).split())


def results_key(document):
    """Where a result is filed: the CPU generation ("amd-zen4-avx512_bf16"), or for `--gpu` the GPU
    ("gpu-nvidia-h100-80gb-hbm3"; the CPU's key when no GPU was visible)."""
    if document["mode"] == "gpu":
        gpus = document.get("workers", {}).get("tf", {}).get("build", {}).get("gpus") or []
        if gpus:
            return "gpu-" + _slug(gpus[0]["name"])
    return document["machine"]["generation_key"]


def budget_check(group, elapsed_s, budget_s):
    """`(skip_reason or None, setup_timeout_s)` for a group about to start after `elapsed_s` seconds.

    Without a budget nothing is skipped. With one, a group whose `estimate_s` would take the run past
    it is skipped, and a set-up may take at most what is left of the budget (30 s at least).
    """
    if budget_s is None:
        return None, SETUP_TIMEOUT_S
    estimate = group.get("estimate_s") or 0.0
    if elapsed_s + estimate > budget_s:
        return (f"skipped: {elapsed_s:.0f} s elapsed + {estimate:.0f} s estimated > the "
                f"{budget_s:.0f} s budget"), 0.0
    return None, max(30.0, budget_s - elapsed_s)


def _gpu_names(workers):
    info = workers["tf"].info.get("build", {}) if "tf" in workers else {}
    return [g["name"] for g in info.get("gpus", [])]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, 2 rounds")
    parser.add_argument("--gpu", action="store_true", help="the accelerator plan only")
    parser.add_argument("--allow-cpu", "--allow_cpu", action="store_true",
                        help="--gpu: run the plan also without a GPU (with --quick: checks the script)")
    parser.add_argument("--dry_run", "--dry-run", action="store_true",
                        help="print the plan (groups, members, sizes, time estimates), run nothing")
    parser.add_argument("--time-budget", "--time_budget", type=float, default=None,
                        help="seconds; a group that would end past it is skipped (default: "
                             f"{plan_lib.GPU_TIME_BUDGET_S} s with --gpu, none otherwise)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per group")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads, every side (default 2; --gpu: TensorFlow's own)")
    parser.add_argument("--only", default=None, help="run the groups whose name contains this")
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results"),
                        help="output directory (results go to OUT/<CPU generation>/)")
    parser.add_argument("--work-dir", default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--baseline-root", default=None,
                        help="a directory holding another florence_keras/ tree (e.g. before a "
                             "change): its CoSwin and Florence-step cases run as extra members "
                             "of the same rounds, every metric is reported for both")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be >= 1. Received: --rounds={args.rounds}")
    if args.threads is None:
        args.threads = 0 if args.gpu else 2
    if args.threads < 0:
        parser.error(f"--threads must be >= 0. Received: --threads={args.threads}")
    if args.time_budget is None and args.gpu:
        args.time_budget = plan_lib.GPU_TIME_BUDGET_S
    rounds = args.rounds or (2 if args.quick else 5)
    target_round_s = 0.0 if args.quick else 1.0
    max_iters = 1 if args.quick else 4
    started = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    scratch = None
    if args.work_dir is None and not args.dry_run:
        scratch = tempfile.TemporaryDirectory(prefix="florence_bench_")
    work_dir = args.work_dir or (scratch.name if scratch else os.path.join(tempfile.gettempdir(),
                                                                           "florence_bench"))
    if args.gpu:
        groups, memory = plan_lib.build_gpu_plan(args.quick, work_dir), None
        if args.only:
            groups = [g for g in groups if args.only in g["name"]]
    else:
        groups, memory = plan_lib.build_plan(args.quick, work_dir, args.only)
        groups += dcn_v2_benchmark.groups(args.quick, args.only)
        groups += detector_inference_benchmark.groups(args.quick, args.only)
    if args.baseline_root:
        groups = add_baseline(groups, os.path.abspath(args.baseline_root))
    sides = sorted({m["side"] for g in groups for m in g["members"]})
    machine = machine_info.collect()
    document = {
        "command": "python benchmarks/run_all.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mode": "gpu" if args.gpu else ("quick" if args.quick else "full"),
        "baseline_root": args.baseline_root,
        "rounds": rounds, "threads": args.threads, "machine": machine,
        "reference_configs": {label: {"side": side, "settings": desc} for label, (side, desc)
                              in plan_lib.REFERENCE_CONFIGS.items()},
        "time_budget_s": args.time_budget,
        "git": _git_state(), "load_average_start": os.getloadavg(), "groups": [],
        "workers": {}, "errors": [],
    }
    if args.dry_run:
        print(f"Machine: {machine_info.describe(machine)} [{machine['generation_key']}]")
        print(f"Mode: {document['mode']}; {rounds} rounds per group; workers: {', '.join(sides)}")
        for line in plan_lib.plan_summary(groups, memory, args.time_budget):
            print(line)
        return document
    os.makedirs(args.out, exist_ok=True)
    log(f"machine: {machine_info.describe(machine)} [{machine['generation_key']}]")
    memory_result = {}
    memory_thread = None
    if memory is not None and args.quick:
        # --quick checks the harness, not the machine: overlap the probes with the workers.
        memory_thread = threading.Thread(
            target=lambda: memory_result.update(run_memory(memory, args.threads, log)))
        log("gradient_cache_memory: started alongside the other groups (--quick)")
        memory_thread.start()
    workers = {}
    try:
        for side in sides:
            log(f"starting the {side} worker")
            try:
                if side == BASELINE_SIDE:
                    workers[side] = Worker("tf", args.threads,
                                           source_root=os.path.abspath(args.baseline_root))
                else:
                    workers[side] = Worker(side, args.threads)
                document["workers"][side] = workers[side].info
            except WorkerError as error:
                document["errors"].append(f"{side} worker: {error}")
                log(f"! {side} worker failed to start: {error}")
        known = {}
        for index, group in enumerate(groups):
            missing = {m["side"] for m in group["members"]} - set(workers)
            if missing:
                document["groups"].append({"name": group["name"], "title": group["title"],
                                           "errors": [f"no {s} worker" for s in missing],
                                           "members": {}, "metrics": []})
                continue
            if group.get("requires_gpu") and not _gpu_names(workers) and not args.allow_cpu:
                document["groups"].append({"name": group["name"], "title": group["title"],
                                           "errors": ["no GPU visible to TensorFlow: not run"],
                                           "members": {}, "metrics": []})
                log(f"{group['name']}: no GPU visible: not run (--allow-cpu runs it anyway)")
                continue
            elapsed = time.perf_counter() - started
            reason, setup_timeout = budget_check(group, elapsed, args.time_budget)
            if reason:
                document["groups"].append({"name": group["name"], "title": group["title"],
                                           "errors": [reason], "members": {}, "metrics": []})
                log(f"{group['name']}: {reason}")
                continue
            log(f"{group['name']}: {group['title']}")
            result = run_group(group, workers, known, rounds, target_round_s, max_iters, log,
                               warmup_rounds=0 if args.quick else 1,
                               setup_timeout_s=setup_timeout)
            document["groups"].append(result)
            for metric in result["metrics"]:
                if "median" in metric:
                    log(f"  {metric['name']}: {metric['median']:.3f} "
                        f"[{metric['min']:.3f}-{metric['max']:.3f}]")
            # Free the models no later group reuses.
            later = {m.get("reuse") for g in groups[index + 1:] for m in g["members"]}
            for member in group["members"]:
                key = _member_key(group, member)
                if key not in later and member["side"] in workers:
                    try:
                        workers[member["side"]].call({"op": "drop", "key": key}, 120)
                    except WorkerError:
                        pass
    finally:
        for w in workers.values():
            w.close()
    if memory_thread is not None:
        memory_thread.join()
        document["memory"] = memory_result
    elif memory is not None:
        # After the workers have exited: the probes must not disturb the timed rounds.
        log("gradient_cache_memory: peak RSS per contrastive batch (subprocesses)")
        document["memory"] = run_memory(memory, args.threads, log)
    document["load_average_end"] = os.getloadavg()
    document["wall_s"] = time.perf_counter() - started
    document["results_key"] = results_key(document)
    stem = "latest_gpu" if args.gpu else ("quick" if args.quick else "latest")
    out_dir = os.path.join(args.out, document["results_key"])
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, stem + ".json")
    md_path = os.path.join(out_dir, stem + ".md")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1, default=str)
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(report.markdown(document))
    log(f"wrote {md_path} and {json_path}")
    if scratch is not None:
        scratch.cleanup()
    return document


if __name__ == "__main__":
    main()

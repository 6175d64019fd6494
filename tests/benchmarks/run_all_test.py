"""The benchmark harness: round/ratio bookkeeping with fake workers, and real --quick runs.

No test asserts a time or a speed: the machine is shared (PERF.md). The harness is checked for
what it computes from the times it is given, and for running end to end.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from benchmarks import plan as plan_lib
from benchmarks import report
from benchmarks import run_all

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class FakeWorker:
    """Answers like a worker; member `label` takes `times[label][round]` seconds per iteration."""

    def __init__(self, times, infos, fail=()):
        self.times, self.infos, self.fail = times, infos, set(fail)
        self.runs = {}

    def call(self, message, timeout):
        label = message["key"].split("/")[-1]
        if message["op"] == "setup":
            if label in self.fail:
                raise run_all.WorkerError("Traceback ...\nValueError: broken case")
            return {"single_s": 0.1, "info": self.infos[label]}
        count = self.runs.get(label, 0)
        self.runs[label] = count + 1
        return {"times": [self.times[label][count]] * message["iters"]}


def _group():
    return {
        "name": "g", "title": "G",
        "members": [
            {"label": "ref", "side": "torch", "kind": "k", "spec": {"batch": 4}},
            {"label": "ours", "side": "tf", "kind": "k", "spec": {"batch": 4}},
            {"label": "peak", "side": "tf", "kind": "matmul", "spec": {}},
        ],
        "parity": ["ours", "ref"],
        "metrics": [
            {"name": "speed-up", "type": "time_ratio", "num": "ref", "den": "ours", "target": 1.25},
            {"name": "mfu", "type": "mfu", "step": "ours", "peak": "peak", "target": 0.4},
            {"name": "rate", "type": "flop_rate_ratio", "num": "ref", "den": "ours", "target": None},
            {"name": "items", "type": "throughput_ratio", "num": "ours", "den": "ref",
             "target": None},
        ],
    }


def test_rounds_are_interleaved_and_ratios_are_medians_of_per_round_ratios():
    # Round times: ref 2, 4, 9 (a disturbed round), ours 1, 2, 2; a warm-up round first (100 s).
    times = {"ref": [100, 2, 4, 9], "ours": [100, 1, 2, 2], "peak": [100, 1, 2, 1]}
    infos = {"ref": {"output": [[1.0, 2.0]], "flops_per_step": 10},
             "ours": {"output": [[1.0, 2.5]], "flops_per_step": 20, "items_per_step": 4},
             "peak": {"flops_per_step": 100}}
    fake = FakeWorker(times, infos)
    result = run_all.run_group(_group(), {"tf": fake, "torch": fake}, {}, rounds=3,
                               target_round_s=0.0, max_iters=1, log=lambda m: None,
                               warmup_rounds=1)
    metrics = {m["name"]: m for m in result["metrics"]}
    # Per-round speed-ups 2, 2, 4.5 -> median 2.
    assert metrics["speed-up"]["per_round"] == [2.0, 2.0, 4.5]
    assert metrics["speed-up"]["median"] == 2.0
    assert metrics["speed-up"]["met"] is True
    assert metrics["speed-up"]["best_vs_best"] == 2.0  # min 2 / min 1
    # MFU per round: (20 / ours) / (100 / best peak time 1) -> 0.2, 0.1, 0.1.
    assert metrics["mfu"]["per_round"] == pytest.approx([0.2, 0.1, 0.1])
    assert metrics["mfu"]["met"] is False
    assert metrics["mfu"]["peak_gflop_per_s"] == pytest.approx(100 / 1e9)
    # FLOP-rate ratio ours / ref: (20/1)/(10/2) = 4, (20/2)/(10/4) = 4, (20/2)/(10/9) = 9.
    assert metrics["rate"]["per_round"] == pytest.approx([4.0, 4.0, 9.0])
    # Items per second, ours (4 per step) over ref (batch 4 from the spec).
    assert metrics["items"]["per_round"] == pytest.approx([2.0, 2.0, 4.5])
    assert result["parity_max_abs_diff"] == pytest.approx(0.5)
    assert result["members"]["ours"]["seconds"]["median"] == 2  # warm-up round left out
    assert fake.runs == {"ref": 4, "ours": 4, "peak": 4}


def test_a_failing_member_is_recorded_and_its_metrics_are_missing():
    times = {"ref": [1, 1], "ours": [1, 1], "peak": [1, 1]}
    infos = {"ref": {"flops_per_step": 1}, "peak": {"flops_per_step": 1}}
    fake = FakeWorker(times, infos, fail={"ours"})
    result = run_all.run_group(_group(), {"tf": fake, "torch": fake}, {}, rounds=2,
                               target_round_s=0.0, max_iters=1, log=lambda m: None)
    assert any("broken case" in e for e in result["errors"])
    assert all("missing" in m for m in result["metrics"])
    text = report.markdown({"mode": "quick", "command": "c", "date": "d", "rounds": 2,
                            "threads": 2, "load_average_start": [0.5], "groups": [result]})
    assert "not measured (ours)" in text


def test_report_renders_targets_memory_and_a_load_warning():
    document = {
        "mode": "full", "command": "python benchmarks/run_all.py", "date": "d", "rounds": 5,
        "threads": 2, "load_average_start": [9.0], "load_average_end": [8.0],
        "machine": {"cpu_count": 2},
        "groups": [{"name": "g", "title": "G", "members": {}, "errors": [], "metrics": [
            {"name": "mfu", "type": "mfu", "median": 0.5, "min": 0.4, "max": 0.6, "target": 0.4,
             "met": True},
            {"name": "speed-up", "type": "time_ratio", "median": 1.1, "min": 1.0, "max": 1.2,
             "target": 1.25, "met": False, "best_vs_best": 1.05}]}],
        "memory": {"chunk": 64, "config": {}, "target": 1.3,
                   "ratio": {"name": "r", "value": 1.1, "target": 1.3, "met": True},
                   "probes": [{"batch": 4096, "chunk": None, "skipped": "too big"}]},
    }
    text = report.markdown(document)
    assert "| G | mfu | **50%** [40–60%] |  | ≥ 40% | yes |" in text  # no peak recorded
    assert "| G | speed-up | **1.10** [1.00–1.20] | 1.05 | ≥ 1.25× | **no** |" in text
    assert "oversubscribed" in text
    assert "| 4096 | no cache | too big |" in text


def test_baseline_twins_members_and_metrics():
    group = _group()
    group["members"][1]["kind"] = "swin"
    (twinned,) = run_all.add_baseline([group], "/tmp/before")
    labels = [m["label"] for m in twinned["members"]]
    assert labels == ["ref", "ours", "peak", "ours (baseline)"]
    twin = twinned["members"][-1]
    assert twin["side"] == run_all.BASELINE_SIDE and twin["spec"] == group["members"][1]["spec"]
    metrics = {m["name"]: m for m in twinned["metrics"]}
    assert metrics["speed-up (baseline)"]["den"] == "ours (baseline)"
    assert metrics["mfu (baseline)"]["step"] == "ours (baseline)"
    assert metrics["items (baseline)"]["num"] == "ours (baseline)"
    assert twinned["baseline_parity"] == ["ours (baseline)", "ours"]
    assert len(group["members"]) == 3  # the input plan is not modified


def test_plan_covers_the_issue():
    groups, memory = plan_lib.build_plan(quick=False, work_dir="/tmp/x")
    names = {g["name"] for g in groups}
    assert {"swin_t_forward_b1", "swin_t_forward_b8", "swin_t_train_b8",
            "coswin_t_conv_forward_b8", "coswin_t_conv_train_b8", "text_forward_b8",
            "text_train_b8", "florence_t_unicl_step", "input_pipeline"} <= names
    assert memory["cache_batches"] == [256, 1024, 4096]
    labels = {g["name"]: {m["label"] for m in g["members"]} for g in groups}
    assert {"step_float32", "step_mixed_bfloat16", "matmul_bf16"} <= labels["florence_t_unicl_step"]
    gpu = plan_lib.build_gpu_plan(quick=False)
    assert gpu[0]["requires_gpu"] and gpu[0]["members"][1]["spec"]["dtype"] == "bfloat16"


def _run(args, tmp_path, timeout):
    out = tmp_path / "out"
    command = [sys.executable, os.path.join(REPO, "benchmarks", "run_all.py"), "--quick",
               "--out", str(out), "--work-dir", str(tmp_path / "work"), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with open(out / "quick.json", encoding="utf-8") as f:
        document = json.load(f)
    assert (out / "quick.md").read_text(encoding="utf-8").startswith("# florence_keras benchmarks")
    return document


def _check_group(group):
    assert not group["errors"], group["errors"]
    for metric in group["metrics"]:
        assert math.isfinite(metric["median"]) and metric["median"] > 0, metric
        assert metric["min"] <= metric["median"] <= metric["max"]


def test_quick_run_of_one_comparison(tmp_path):
    document = _run(["--only", "swin_t_forward_b8", "--rounds", "2"], tmp_path, timeout=600)
    assert [g["name"] for g in document["groups"]] == ["swin_t_forward_b8"]
    group = document["groups"][0]
    _check_group(group)
    # Both sides ran the same converted weights.
    assert group["parity_max_abs_diff"] < 1e-4
    assert set(group["members"]) == {"florence_keras", "transformers", "matmul_f32"}
    assert document["machine"]["cpu_count"] >= 1 and "torch" in document["workers"]


@pytest.mark.slow
def test_quick_run_of_everything(tmp_path):
    document = _run([], tmp_path, timeout=1800)
    for group in document["groups"]:
        _check_group(group)
    assert len(document["groups"]) == len(plan_lib.build_plan(True, "/tmp/x")[0])
    assert "ratio" in document["memory"]
    assert all("peak_rss_mib" in p for p in document["memory"]["probes"])

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

from benchmarks import dcn_v2_benchmark
from benchmarks import detector_inference_benchmark
from benchmarks import plan as plan_lib
from benchmarks import report
from benchmarks import run_all
from benchmarks import worker

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class FakeWorker:
    """Answers like a worker; member `label` takes `times[label][round]` seconds per iteration."""

    def __init__(self, times, infos, fail=()):
        self.times, self.infos, self.fail = times, infos, set(fail)
        self.runs = {}
        self.setups = []

    def call(self, message, timeout):
        label = message["key"].split("/")[-1]
        if message["op"] == "setup":
            self.setups.append(label)
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


def _reference_group():
    group = _group()
    group["members"][0]["label"] = "transformers"
    for metric in group["metrics"]:
        for field in ("num", "den", "step"):
            if metric.get(field) == "ref":
                metric[field] = "transformers"
    group["metrics"].append({"name": "ref mfu", "type": "mfu", "step": "transformers",
                             "peak": "peak", "target": None})
    group["parity"] = ["ours", "transformers"]
    return group


def test_reference_runs_default_and_tuned_and_ratios_take_the_faster_per_round():
    (group,) = plan_lib.with_reference_configs([_reference_group()])
    members = {m["label"]: m for m in group["members"]}
    assert members["transformers (tuned)"]["side"] == "torch"
    assert members["transformers (default)"]["side"] == "torch_default"
    assert members["transformers (default)"]["spec"] == {"batch": 4, "save": False}
    assert members["transformers (tuned)"]["spec"] == {"batch": 4}  # writes the checkpoint
    assert group["parity"] == ["ours", "transformers (tuned)"]
    metrics = {m["name"]: m for m in group["metrics"]}
    assert metrics["speed-up"]["num"] == ["transformers (default)", "transformers (tuned)"]
    assert metrics["speed-up"]["target"] == 1.25
    assert metrics["speed-up [default config]"]["num"] == "transformers (default)"
    assert metrics["speed-up [tuned config]"]["target"] is None
    assert "ref mfu" not in metrics  # one MFU per configuration, no "faster of" MFU
    assert metrics["ref mfu [tuned config]"]["step"] == "transformers (tuned)"

    # Default config faster in round 1 (2 vs 3), tuned in round 2 (4 vs 2.5); ours 1 and 2.
    times = {"transformers (tuned)": [3, 2.5], "transformers (default)": [2, 4], "ours": [1, 2],
             "peak": [1, 1]}
    infos = {"transformers (tuned)": {"flops_per_step": 10, "output": [[1.0]]},
             "transformers (default)": {"flops_per_step": 10},
             "ours": {"flops_per_step": 20, "output": [[1.5]]}, "peak": {"flops_per_step": 100}}
    fake = FakeWorker(times, infos)
    result = run_all.run_group(group, {"tf": fake, "torch": fake, "torch_default": fake}, {},
                               rounds=2, target_round_s=0.0, max_iters=1, log=lambda m: None)
    values = {m["name"]: m for m in result["metrics"]}
    # Against the faster reference: min(3, 2) / 1 = 2, min(2.5, 4) / 2 = 1.25.
    assert values["speed-up"]["per_round"] == pytest.approx([2.0, 1.25])
    assert values["speed-up [default config]"]["per_round"] == pytest.approx([2.0, 2.0])
    assert values["speed-up [tuned config]"]["per_round"] == pytest.approx([3.0, 1.25])
    # Best vs best: fastest reference iteration (2) over ours' fastest (1).
    assert values["speed-up"]["best_vs_best"] == pytest.approx(2.0)
    # FLOP rate ours / faster reference: (20/1)/(10/2) = 4, (20/2)/(10/2.5) = 2.5.
    assert values["rate"]["per_round"] == pytest.approx([4.0, 2.5])
    assert values["ref mfu [default config]"]["per_round"] == pytest.approx([0.05, 0.025])
    assert result["parity_max_abs_diff"] == pytest.approx(0.5)
    # The torch members are set up before the TF ones (the tuned one writes the checkpoint).
    assert fake.setups[:2] == ["transformers (tuned)", "transformers (default)"]


def test_the_default_reference_worker_sets_nothing_but_the_thread_count():
    default = worker.settings_for("torch_default", 2)
    assert default == {"env": {}, "num_threads": 2, "num_interop_threads": None}
    tuned = worker.settings_for("torch", 2)
    assert tuned["env"]["OMP_WAIT_POLICY"] == "PASSIVE" and tuned["num_interop_threads"] == 1
    assert tuned["env"]["OMP_NUM_THREADS"] == "2" and tuned["num_threads"] == 2
    tf_side = worker.settings_for("tf", 2)
    assert "OMP_WAIT_POLICY" not in tf_side["env"] and tf_side["tf_threads"] == 2
    # --gpu (0 threads): every framework keeps its own thread count.
    assert worker.settings_for("tf", 0)["tf_threads"] is None
    assert worker.settings_for("torch_default", 0)["num_threads"] is None
    with pytest.raises(ValueError, match="Unknown worker side 'jax'"):
        worker.settings_for("jax", 2)


def test_baseline_twins_metrics_against_the_faster_reference():
    group = plan_lib.with_reference_configs([_reference_group()])[0]
    group["members"][2]["kind"] = "swin"  # "ours"
    (twinned,) = run_all.add_baseline([group], "/tmp/before")
    metrics = {m["name"]: m for m in twinned["metrics"]}
    assert metrics["speed-up (baseline)"]["num"] == ["transformers (default)", "transformers (tuned)"]
    assert metrics["speed-up (baseline)"]["den"] == "ours (baseline)"
    assert metrics["rate (baseline)"]["num"] == ["transformers (default)", "transformers (tuned)"]


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
    for group in groups:  # every comparison with transformers runs both reference configurations
        sides = {m["side"] for m in group["members"]}
        assert ("torch" in sides) == ("torch_default" in sides), group["name"]
        assert "transformers" not in {m["label"] for m in group["members"]}
    assert {"swin_t_forward_b1", "swin_t_forward_b8", "swin_t_train_b8",
            "coswin_t_conv_forward_b8", "coswin_t_conv_train_b8", "text_forward_b8",
            "text_train_b8", "florence_t_unicl_step", "input_pipeline"} <= names
    assert memory["cache_batches"] == [256, 1024, 4096]
    labels = {g["name"]: {m["label"] for m in g["members"]} for g in groups}
    assert {"step_float32", "step_mixed_bfloat16", "matmul_bf16"} <= labels["florence_t_unicl_step"]


def test_gpu_plan_measures_the_issue_within_the_time_budget():
    groups = plan_lib.build_gpu_plan(quick=False, work_dir="/tmp/x")
    assert [g["name"] for g in groups] == ["florence_b_unicl_step_gpu", "florence_b_xla_gpu",
                                           "input_pipeline_gpu"]
    assert all(g["requires_gpu"] for g in groups)
    assert {m["side"] for g in groups for m in g["members"]} == {"tf"}  # no reference on the GPU
    # Within 8 minutes, the worker's start included, by the plan's own estimates.
    total = plan_lib.GPU_WORKER_START_S + sum(g["estimate_s"] for g in groups)
    assert total <= plan_lib.GPU_TIME_BUDGET_S == 480
    step, xla, pipeline = groups
    members = {m["label"]: m for m in step["members"]}
    assert members["step_mixed_bfloat16"]["spec"]["config"]["preset"] == "florence_base"
    assert members["step_mixed_bfloat16"]["spec"]["dtype"] == "mixed_bfloat16"
    assert members["matmul_bf16"]["spec"]["dtype"] == "bfloat16"
    assert {m["type"] for m in step["metrics"]} == {"throughput", "mfu"}
    xla_member = next(m for m in xla["members"] if m["label"].endswith("_xla"))
    assert xla_member["spec"]["jit_compile"] is True
    # Each reuse names a case an earlier group sets up, with the same batch as the XLA case.
    keys = {m.get("key") for g in groups for m in g["members"]}
    assert all(m["reuse"] in keys for g in groups for m in g["members"] if "reuse" in m)
    assert members["step_mixed_bfloat16"]["spec"]["batch"] == xla_member["spec"]["batch"]
    assert {m["type"] for m in pipeline["metrics"]} == {"throughput", "throughput_ratio"}
    assert "estimated total 460 s" in "\n".join(plan_lib.plan_summary(groups, None, 480))
    quick = plan_lib.build_gpu_plan(quick=True, work_dir="/tmp/x")
    assert [g["name"] for g in quick] == [g["name"] for g in groups]
    assert quick[0]["members"][0]["spec"]["config"]["preset"] == "tiny_test"


def test_time_budget_skips_a_group_that_would_end_past_it():
    group = {"estimate_s": 100}
    assert run_all.budget_check(group, 500.0, None) == (None, run_all.SETUP_TIMEOUT_S)
    reason, _ = run_all.budget_check(group, 390.0, 480)
    assert reason.startswith("skipped: 390 s elapsed + 100 s estimated > the 480 s budget")
    assert run_all.budget_check(group, 300.0, 480) == (None, 180.0)
    assert run_all.budget_check({}, 470.0, 480) == (None, 30.0)


def test_gpu_dry_run_prints_the_plan_and_runs_nothing(tmp_path):
    command = [sys.executable, os.path.join(REPO, "benchmarks", "run_all.py"), "--gpu", "--dry_run",
               "--out", str(tmp_path / "out")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.startswith("Machine: ") and "Mode: gpu" in out
    for name in ("florence_b_unicl_step_gpu", "florence_b_xla_gpu", "input_pipeline_gpu",
                 "'jit_compile': True", "'preset': 'florence_base'", "(budget 480 s)"):
        assert name in out, name
    assert not (tmp_path / "out").exists()  # nothing measured, nothing written
    assert "tensorflow" not in done.stderr.lower()  # the driver never started TensorFlow


def test_results_are_filed_per_cpu_generation_and_gpu():
    document = {"mode": "full", "machine": {"generation_key": "amd-zen3-avx2"}, "workers": {}}
    assert run_all.results_key(document) == "amd-zen3-avx2"
    gpu = {"mode": "gpu", "machine": {"generation_key": "amd-zen3-avx2"},
           "workers": {"tf": {"build": {"gpus": [{"name": "NVIDIA H200"}]}}}}
    assert run_all.results_key(gpu) == "gpu-nvidia-h200"
    gpu["workers"]["tf"]["build"]["gpus"] = []
    assert run_all.results_key(gpu) == "amd-zen3-avx2"  # no GPU visible: filed with the CPU


def _run(args, tmp_path, timeout):
    out = tmp_path / "out"
    command = [sys.executable, os.path.join(REPO, "benchmarks", "run_all.py"), "--quick",
               "--out", str(out), "--work-dir", str(tmp_path / "work"), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (folder,) = os.listdir(out)  # the results key of this machine
    with open(out / folder / "quick.json", encoding="utf-8") as f:
        document = json.load(f)
    assert folder == document["results_key"] == document["machine"]["generation_key"]
    text = (out / folder / "quick.md").read_text(encoding="utf-8")
    assert text.startswith("# florence_keras benchmarks") and "## Machine" in text
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
    assert set(group["members"]) == {"florence_keras", "transformers (tuned)",
                                     "transformers (default)", "matmul_f32"}
    assert document["machine"]["cpu_count"] >= 1
    assert set(document["workers"]) == {"tf", "torch", "torch_default"}
    # Each worker recorded its build and environment; the default reference set no variable.
    default_env = document["workers"]["torch_default"]["build"]["env"]
    assert document["workers"]["torch_default"]["settings"]["env"] == {}
    assert default_env["OMP_WAIT_POLICY"] == os.environ.get("OMP_WAIT_POLICY")
    assert document["workers"]["torch"]["build"]["env"]["OMP_WAIT_POLICY"] == "PASSIVE"
    assert document["workers"]["tf"]["build"]["onednn"] in (True, False)


@pytest.mark.slow
def test_quick_run_of_everything(tmp_path):
    document = _run([], tmp_path, timeout=1800)
    for group in document["groups"]:
        _check_group(group)
    assert len(document["groups"]) == (len(plan_lib.build_plan(True, "/tmp/x")[0])
                                       + len(dcn_v2_benchmark.groups(True))
                                       + len(detector_inference_benchmark.groups(True)))
    assert "ratio" in document["memory"]
    assert all("peak_rss_mib" in p for p in document["memory"]["probes"])

"""The DCNv2 benchmark: its harness group and worker kinds fit together, and a tiny run reports every ratio.

No time or speed is asserted (the machine is shared, PERF.md).
"""

from benchmarks import dcn_v2_benchmark
from benchmarks import tf_cases


def test_group_members_are_worker_kinds():
    (group,) = dcn_v2_benchmark.groups(quick=False)
    assert group["name"] == "dcn_v2_train" and dcn_v2_benchmark.groups(quick=False, only="swin") == []
    assert {m["kind"] for m in group["members"]} <= set(tf_cases.CASES)
    assert all(m["spec"] == dcn_v2_benchmark.DYHEAD_LEVEL for m in group["members"])
    labels = {m["label"] for m in group["members"]}
    assert all({metric["num"], metric["den"]} <= labels and metric["target"] == 0.5 for metric in group["metrics"])


def test_tiny_run_reports_ratios_and_a_worker_case_runs():
    result = dcn_v2_benchmark.run(dcn_v2_benchmark.QUICK_LEVEL, rounds=1, iters=1, xla="off", log=lambda _: None)
    assert set(result["members"]) == {"conv2d", "dcn_v2", "dcn_v2_given_offsets"}
    assert [r["member"] for r in result["ratios"]] == ["dcn_v2", "dcn_v2_given_offsets"]
    assert all(r["cpu_time_ratio"]["n"] == 1 and r["wall_time_ratio"]["median"] > 0 for r in result["ratios"])
    assert 0.2 < result["members"]["dcn_v2"]["offset_std_px"] < 5  # offsets really move the taps
    assert "| dcn_v2 |" in dcn_v2_benchmark.markdown(result, "test machine")
    case = tf_cases.CASES["dcn_v2"](dict(dcn_v2_benchmark.QUICK_LEVEL), {})
    case.step()
    assert case.info()["flops_per_step"] == 3 * 2 * 12 * 18 * 9 * 16 * 16

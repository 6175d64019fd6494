"""The detector inference benchmark: its harness group and worker kinds fit together, and a tiny run of its plan
reports images/s and the Florence / RetinaNet ratio.

No time or speed is asserted (the machine is shared, PERF.md).
"""

import pytest

from benchmarks import detector_inference_benchmark as bench
from benchmarks import tf_cases


def test_full_plan_is_640_px_both_backbones_and_batches_against_the_reference():
    (group,) = bench.groups(quick=False)
    assert group["name"] == "detector_inference_640" and bench.groups(quick=False, only="swin") == []
    assert {m["kind"] for m in group["members"]} <= set(tf_cases.CASES)
    labels = [m["label"] for m in group["members"]]
    assert labels == ["florence_mini b1", "florence_tiny b1", "retinanet_resnet50 b1",
                      "florence_mini b4", "florence_tiny b4", "retinanet_resnet50 b4"]
    assert all(m["spec"]["image_size"] == 640 and m["spec"]["num_classes"] == 80 for m in group["members"])
    # The default detector head (no fpn_channels / num_head_blocks override: 256 channels, 6 DyHead blocks).
    assert all("num_head_blocks" not in m["spec"] for m in group["members"])
    assert group["members"][2]["spec"]["resnet"]["stackwise_num_blocks"] == [3, 4, 6, 3]  # ResNet-50
    ratios = [(m["num"], m["den"]) for m in group["metrics"] if m["type"] == "throughput_ratio"]
    assert ratios == [("florence_mini b1", "retinanet_resnet50 b1"), ("florence_tiny b1", "retinanet_resnet50 b1"),
                      ("florence_mini b4", "retinanet_resnet50 b4"), ("florence_tiny b4", "retinanet_resnet50 b4")]
    assert {m["step"] for m in group["metrics"] if m["type"] == "throughput"} == set(labels)


def test_tiny_run_reports_images_per_second_and_ratio():
    members = bench.member_specs(quick=True, batches=[2], florence_score_threshold=0.0)
    assert [label for label, _ in members] == ["florence_mini b2", "retinanet_resnet50 b2"]
    result = bench.run(members, rounds=1, iters=1, log=lambda _: None)
    florence, reference = result["members"]["florence_mini b2"], result["members"]["retinanet_resnet50 b2"]
    for member in (florence, reference):
        assert member["boxes_shape"] == [2, 100, 4] and member["items_per_step"] == 2
        assert member["images_per_cpu_s"] == pytest.approx(2 / member["cpu_s"]["median"])
    (ratio,) = result["ratios"]
    assert ratio["member"] == "florence_mini b2" and ratio["against"] == "retinanet_resnet50 b2"
    # One round: Florence images/s over the reference's = the reference's step time over Florence's.
    assert ratio["wall_images_per_s_ratio"]["median"] == pytest.approx(
        reference["wall_s"]["median"] / florence["wall_s"]["median"])
    assert ratio["cpu_images_per_s_ratio"]["n"] == 1
    assert florence["mean_detections"] > 0  # score threshold 0: every candidate reaches NMS
    assert florence["params"] > 0 and reference["params"] > 0
    assert "| florence_mini b2 | retinanet_resnet50 b2 |" in bench.markdown(result, "test machine")


def test_worker_kind_builds_the_reference_and_steps():
    (_, spec), = [m for m in bench.member_specs(quick=True, batches=[1]) if m[1]["kind"] == "retinanet"]
    case = tf_cases.CASES["retinanet_inference"]({k: v for k, v in spec.items() if k != "kind"}, {})
    detections = case.step()
    assert detections["boxes"].shape == (1, 100, 4) and case.info()["items_per_step"] == 1

"""FlorenceDetector inference images/s at 640 x 640 against keras-hub's RetinaNet (ResNet-50 FPN), side by side.

    nice -n 15 python benchmarks/detector_inference_benchmark.py [--image_size 640] [--batches 1,4]
        [--backbones florence_mini,florence_tiny] [--florence_score_threshold T] [--rounds 3] [--iters 1] [--threads 2]
        [--quick] [--output result.json]

Issue #13 item 7: "detector images/s at 640 px reported". Every member is a compiled (`tf.function`, no XLA) step
that takes a fixed batch of normalised `S x S` images and returns the decoded detections, fetched to NumPy:

* `<preset> b<batch>`: `FlorenceDetector` with its defaults (FPN 256 channels over CoSwin stages 3-5 + P6/P7,
  6 Dynamic Head blocks, ATSS head; score threshold 0.05, top-1000, per-class NMS 0.6, 100 detections) on the
  architecture preset's CoSwin (`florence_mini`: the CPU-scale model; `florence_tiny`: CoSwin-T), random weights.
* `retinanet_resnet50 b<batch>`: the reference of the same role (one-stage, FPN P3-P7, dense head, NMS) from the pinned
  keras-hub: `RetinaNetObjectDetector` on a `ResNetBackbone` built from ResNet-50's config (bottleneck blocks
  3-4-6-3, 7x7 stem), P6 from C5 (`use_p5=False`), 9 anchors per location, 4-conv heads, keras-hub's
  `NonMaxSuppression` (its defaults: confidence 0.5, IoU 0.5, 100 detections); random weights, nothing downloaded.

Both sides have `NUM_CLASSES` (80, COCO's) classes and keep at most 100 detections per image. With random weights
RetinaNet's classification head (keras-hub gives the box head, not the class head, a prior bias) scores many anchors
above its 0.5 threshold (100 detections per image), while no Florence box passes its default 0.05 (the ATSS head's
prior 0.01 × centerness: 0 detections), so Florence's per-class NMS has little to do: the default comparison favours
Florence by the cost of NMS on 100 boxes. `--florence_score_threshold 0` makes every Florence candidate (top-1000)
reach NMS, its full work.

Members take turns in interleaved rounds (the order rotating), all in one process with the same thread pools, after one
untimed warm-up round; each round's time for a member is the median of `--iters` steps. Images/s = batch / time; the
Florence / RetinaNet ratio is taken per round at the same batch and its median, min and max over rounds are reported,
from wall time and from this process's CPU time (on a shared machine CPU time is the steadier of the two: PERF.md).

The same cases are registered with the harness (`python benchmarks/run_all.py --only detector_inference`): `CASES`
(kinds of the TensorFlow worker, `benchmarks/tf_cases.py`) and `groups()` (added to `run_all.py`'s plan). TensorFlow
is imported only inside the cases, so the harness's driver process stays free of it.
"""

import argparse
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.append(REPO)

from benchmarks.interleaved_rounds import publish  # noqa: E402
from benchmarks.interleaved_rounds import ratio_row  # noqa: E402
from benchmarks.interleaved_rounds import summary as _summary  # noqa: E402
from benchmarks.interleaved_rounds import time_rounds  # noqa: E402

NUM_CLASSES = 80
FULL = {"image_size": 640, "batches": (1, 4), "backbones": ("florence_mini", "florence_tiny")}
# `--quick`: checks the script, measures nothing (tiny head and reference; the mini CoSwin at 64 px).
QUICK = {"image_size": 64, "batches": (1, 2), "backbones": ("florence_mini",)}
QUICK_FLORENCE = {"fpn_channels": 16, "num_head_blocks": 1}
RESNET50 = {"input_conv_filters": [64], "input_conv_kernel_sizes": [7],
            "stackwise_num_filters": [64, 128, 256, 512], "stackwise_num_blocks": [3, 4, 6, 3],
            "stackwise_num_strides": [1, 2, 2, 2], "block_type": "bottleneck_block"}
QUICK_RESNET = dict(RESNET50, stackwise_num_filters=[64, 16, 16, 16],  # keras-hub: the first must be 64
                    stackwise_num_blocks=[1, 1, 1, 1])
REFERENCE = "retinanet_resnet50"


def _florence(spec):
    import keras

    from florence_keras.models import presets
    from florence_keras.models.florence_detector import FlorenceDetector

    size = spec["image_size"]
    keras.utils.set_random_seed(0)
    backbone = presets.build_backbone(presets.architecture_config(spec["preset"], image_size=size))
    head = {k: spec[k] for k in ("fpn_channels", "num_head_blocks", "score_threshold") if k in spec}
    return FlorenceDetector(backbone, [f"class {i}" for i in range(spec["num_classes"])], image_size=size, **head)


def _retinanet(spec):
    import keras
    from keras_hub.models import ResNetBackbone
    from keras_hub.models import RetinaNetBackbone
    from keras_hub.models import RetinaNetObjectDetector

    size = spec["image_size"]
    keras.utils.set_random_seed(0)
    resnet = ResNetBackbone(**spec["resnet"], image_shape=(size, size, 3))
    backbone = RetinaNetBackbone(image_encoder=resnet, min_level=3, max_level=7, use_p5=False,
                                 image_shape=(size, size, 3))
    return RetinaNetObjectDetector(backbone, num_classes=spec["num_classes"], bounding_box_format="xyxy")


class _Case:
    """One compiled inference step (forward + decoding) on a fixed batch (traced at construction, never timed)."""

    def __init__(self, spec):
        import numpy as np
        import tensorflow as tf

        self.spec = spec
        size, batch = spec["image_size"], spec["batch"]
        images = np.random.default_rng(0).normal(size=(batch, size, size, 3)).astype("float32")
        self.images = tf.constant(images)
        if spec["kind"] == "florence":
            model = _florence(spec)
            scales = tf.ones([4], tf.float32)  # inputs are the model's size: boxes stay in its pixels

            @tf.function
            def step(images):
                return model.decode(model(images, training=False), scales, size, size)
        elif spec["kind"] == "retinanet":
            model = _retinanet(spec)

            @tf.function
            def step(images):
                return model.decode_predictions(model(images, training=False), images)
        else:
            raise ValueError(f"Unknown detector benchmark kind {spec['kind']!r}")
        self.model = model
        self._step = step
        self.params = int(model.count_params())
        self.detections = self.step()  # trace

    def step(self):
        outputs = self._step(self.images)
        # Fetching the decoded detections waits for the whole step.
        return {"boxes": outputs["boxes"].numpy(), "num_detections": outputs["num_detections"].numpy()}

    def info(self):
        import keras
        import keras_hub
        import tensorflow as tf

        return {"items_per_step": self.spec["batch"], "params": self.params,
                "image_size": self.spec["image_size"], "batch": self.spec["batch"],
                "mean_detections": float(self.detections["num_detections"].mean()),
                "boxes_shape": list(self.detections["boxes"].shape),
                "tensorflow": tf.__version__, "keras": keras.__version__, "keras_hub": keras_hub.__version__,
                "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}


def member_specs(quick=False, image_size=None, batches=None, backbones=None, florence_score_threshold=None):
    """`[(label, spec)]` of every member: each backbone's detector and the reference, at each batch
    (`florence_score_threshold`: None keeps the detector's default)."""
    plan = QUICK if quick else FULL
    size = image_size or plan["image_size"]
    members = []
    for batch in batches or plan["batches"]:
        for preset in backbones or plan["backbones"]:
            spec = {"kind": "florence", "preset": preset, "image_size": size, "batch": batch,
                    "num_classes": NUM_CLASSES, **(QUICK_FLORENCE if quick else {})}
            if florence_score_threshold is not None:
                spec["score_threshold"] = float(florence_score_threshold)
            members.append((f"{preset} b{batch}", spec))
        members.append((f"{REFERENCE} b{batch}", {"kind": "retinanet", "image_size": size, "batch": batch,
                                                   "num_classes": NUM_CLASSES,
                                                   "resnet": QUICK_RESNET if quick else RESNET50}))
    return members


def _make(kind):
    def factory(spec, cases):
        return _Case(dict(spec, kind=kind))

    return factory


# Kinds for the harness's TensorFlow worker (benchmarks/tf_cases.py CASES).
CASES = {"florence_detector_inference": _make("florence"), "retinanet_inference": _make("retinanet")}
_KINDS = {"florence": "florence_detector_inference", "retinanet": "retinanet_inference"}


def groups(quick, only=None):
    """The harness group (`run_all.py`): images/s of each member and Florence / RetinaNet at the same batch."""
    specs = member_specs(quick)
    size = specs[0][1]["image_size"]
    members = [{"label": label, "side": "tf", "kind": _KINDS[spec["kind"]],
                "spec": {k: v for k, v in spec.items() if k != "kind"}} for label, spec in specs]
    metrics = [{"name": f"images/s {label}", "type": "throughput", "step": label} for label, _ in specs]
    for label, spec in specs:
        if spec["kind"] == "florence":
            reference = f"{REFERENCE} b{spec['batch']}"
            metrics.append({"name": f"{label} images/s / {reference} images/s", "type": "throughput_ratio",
                            "num": label, "den": reference})
    group = {"name": f"detector_inference_{size}",
             "title": f"Detector inference (forward + decoding) at {size}x{size}: FlorenceDetector (DyHead) vs "
                      f"keras-hub RetinaNet ResNet-50",
             "members": members, "parity": None, "metrics": metrics}
    return [group] if not only or only in group["name"] else []


def run(members, rounds=3, iters=1, log=print):
    """Measures `members` (`member_specs`) in interleaved rounds; returns the JSON-able result."""
    cases = {}
    for label, spec in members:
        start, cpu_start = time.perf_counter(), time.process_time()
        cases[label] = _Case(spec)
        log(f"  built {label} in {time.perf_counter() - start:.1f} s wall, "
            f"{time.process_time() - cpu_start:.1f} s CPU")
    # One untimed round first: the first step after other cases were set up pays a one-off cost.
    wall, cpu = time_rounds(cases, rounds, iters, log, warmup=True)
    names = list(cases)
    batch = {name: spec["batch"] for name, spec in members}
    ratios = []
    for name, spec in members:
        if spec["kind"] != "florence":
            continue
        reference = f"{REFERENCE} b{spec['batch']}"
        # images/s ratio = (b / t_florence) / (b / t_reference) = t_reference / t_florence
        ratios.append({"member": name, "against": reference,
                       "cpu_images_per_s_ratio": _summary([cpu[reference][i] / cpu[name][i] for i in range(rounds)]),
                       "wall_images_per_s_ratio": _summary([wall[reference][i] / wall[name][i]
                                                            for i in range(rounds)])})
    return {"rounds": rounds, "iters": iters,
            "members": {n: {"cpu_s": _summary(cpu[n]), "wall_s": _summary(wall[n]),
                            "images_per_cpu_s": batch[n] / statistics.median(cpu[n]),
                            "images_per_wall_s": batch[n] / statistics.median(wall[n]), **cases[n].info()}
                        for n in names},
            "ratios": ratios}


def markdown(result, machine_line):
    sizes = sorted({m["image_size"] for m in result["members"].values()})
    lines = [f"Detector inference (forward + decoding, random weights, {NUM_CLASSES} classes) at "
             f"{'/'.join(str(s) for s in sizes)} px; {result['rounds']} interleaved rounds; {machine_line}", "",
             "| member | params | CPU s / step (median) | images per CPU s | wall s / step (median) "
             "| images/s (wall) |",
             "|---|---|---|---|---|---|"]
    for name, m in result["members"].items():
        lines.append(f"| {name} | {m['params'] / 1e6:.1f} M | {m['cpu_s']['median']:.3f} | "
                     f"{m['images_per_cpu_s']:.2f} | {m['wall_s']['median']:.3f} | {m['images_per_wall_s']:.2f} |")
    lines += ["", "| Florence member | against | images/s ratio, CPU time: median [min, max] | "
              "images/s ratio, wall time: median [min, max] |", "|---|---|---|---|"]
    lines += [ratio_row(r["member"], r["against"], r["cpu_images_per_s_ratio"], r["wall_images_per_s_ratio"])
              for r in result["ratios"]]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image_size", type=int, default=None, help=f"default {FULL['image_size']}")
    parser.add_argument("--batches", default=None, help="comma-separated, default "
                        + ",".join(str(b) for b in FULL["batches"]))
    parser.add_argument("--backbones", default=None, help="architecture presets, default "
                        + ",".join(FULL["backbones"]))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=1, help="steps per member per round (their median counts)")
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra/inter-op threads (0: default)")
    parser.add_argument("--florence_score_threshold", type=float, default=None,
                        help="FlorenceDetector's score threshold (default: its own, 0.05; 0: every candidate to NMS)")
    parser.add_argument("--quick", action="store_true", help="tiny models at 64 px: checks the script")
    parser.add_argument("--output", default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.iters < 1:
        parser.error(f"--rounds and --iters must be >= 1. Received: {args.rounds}, {args.iters}")
    batches = [int(b) for b in args.batches.split(",")] if args.batches else None
    if batches and min(batches) < 1:
        parser.error(f"--batches must be positive. Received: {args.batches}")
    backbones = args.backbones.split(",") if args.backbones else None
    members = member_specs(args.quick, args.image_size, batches, backbones, args.florence_score_threshold)
    import tensorflow as tf

    if args.threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    started, cpu_started = time.perf_counter(), time.process_time()
    result = run(members, rounds=args.rounds, iters=args.iters,
                 log=lambda line: print(line, file=sys.stderr, flush=True))
    return publish(result, markdown, "detector_inference_benchmark.py", argv, args.threads, args.output,
                   wall_s=time.perf_counter() - started, cpu_s=time.process_time() - cpu_started)

if __name__ == "__main__":
    main()

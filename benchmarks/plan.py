"""What `run_all.py` measures: the benchmark groups, full size and `--quick` tiny size.

A group is a set of members (cases in the TF or torch worker) that run in interleaved rounds,
and metrics computed per round from the members' times, then reduced to the median over rounds.
Metric types:

* `time_ratio`: time(num) / time(den) — with num the reference, a speed-up of den.
* `flop_rate_ratio`: (FLOPs/s of num) / (FLOPs/s of den) — for models doing different work.
* `mfu`: (FLOPs/s of step) / (FLOPs/s of the peak matmul measured in the same round).
* `throughput_ratio`: (items/s of num) / (items/s of den).
* `throughput`: items/s of step (images/s of a training step or an input pipeline).

A metric's `num`, `den` or `step` may be a list of labels: each round takes the fastest of them. The
reference runs that way in two configurations (`with_reference_configs`): as configured by default,
and tuned; a speed-up is taken against the faster of the two.

`--gpu` runs `build_gpu_plan`: a fixed plan with a time budget (`GPU_TIME_BUDGET_S`); each of its
groups carries `estimate_s` (set-up, compile and rounds) and the driver skips a group that would end
past the budget.
"""

import os

SWIN_T = {"image_size": 224, "embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24],
          "window_size": 7}
SWIN_TINY = {"image_size": 32, "embed_dim": 16, "depths": [1, 2], "num_heads": [1, 2],
             "window_size": 2}
CLIP_TEXT = {"vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048,
             "num_hidden_layers": 12, "num_attention_heads": 8, "max_position_embeddings": 77,
             "eos_token_id": 49407, "bos_token_id": 49406, "pad_token_id": 1}
CLIP_TEXT_TINY = {"vocab_size": 1000, "hidden_size": 32, "intermediate_size": 64,
                  "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 16,
                  "eos_token_id": 999, "bos_token_id": 998, "pad_token_id": 1}

# The gradient-cache memory model: small towers at 32x32 so that B = 4,096 runs on 2 cores in
# seconds; what grows with B (inputs, [B, D] embeddings, the loss's logits: [B, B] without the
# cache, [chunk, B] blocks with it) does not depend on the towers, and projection_dim is Florence-T's 512.
MEMORY_MODEL = {
    "image_encoder": {"embed_dim": 32, "depths": [1, 1], "num_heads": [1, 2], "window_size": 4,
                      "drop_path_rate": 0.0, "patch_embedding": "conv", "image_shape": [32, 32, 3]},
    "text_encoder": {"hidden_dim": 64, "num_layers": 2, "num_heads": 2, "vocabulary_size": 49408,
                     "max_sequence_length": 77},
    "projection_dim": 512,
}


REFERENCE = "transformers"
REFERENCE_TUNED = "transformers (tuned)"
REFERENCE_DEFAULT = "transformers (default)"
# What the two reference configurations are (the workers apply them: worker.settings_for).
REFERENCE_CONFIGS = {
    REFERENCE_DEFAULT: ("torch_default", "as a user gets it: only the thread count set (equal to TensorFlow's)"),
    REFERENCE_TUNED: ("torch", "OMP_WAIT_POLICY=PASSIVE, OMP/MKL_NUM_THREADS, 1 inter-op thread"),
}


def with_reference_configs(groups):
    """Runs every `REFERENCE` member twice: as configured by default and tuned (returns new groups).

    A metric that compares with the reference (`num` / `den` = `REFERENCE`) is taken against the faster of
    the two in each round, and repeated against each configuration alone (no target, "[default config]" /
    "[tuned config]"). A reference MFU metric is reported for each configuration. The tuned member writes
    the checkpoint the TensorFlow side converts; the default one builds the same seeded weights.
    """
    result = []
    for group in groups:
        labels = [m["label"] for m in group["members"]]
        if REFERENCE not in labels:
            result.append(group)
            continue
        group = dict(group)
        members = []
        for member in group["members"]:
            if member["label"] != REFERENCE:
                members.append(member)
                continue
            members.append(dict(member, label=REFERENCE_TUNED, side=REFERENCE_CONFIGS[REFERENCE_TUNED][0]))
            members.append(dict(member, label=REFERENCE_DEFAULT, side=REFERENCE_CONFIGS[REFERENCE_DEFAULT][0],
                                spec=dict(member["spec"], save=False)))
        metrics = []
        for metric in group["metrics"]:
            fields = [k for k in ("num", "den", "step") if metric.get(k) == REFERENCE]
            if not fields:
                metrics.append(metric)
                continue
            if metric["type"] != "mfu":
                headline = dict(metric, reference="faster of default and tuned, per round")
                headline.update({k: [REFERENCE_DEFAULT, REFERENCE_TUNED] for k in fields})
                metrics.append(headline)
            for label, tag in ((REFERENCE_DEFAULT, "default config"), (REFERENCE_TUNED, "tuned config")):
                twin = dict(metric, name=f"{metric['name']} [{tag}]", target=None)
                twin.update({k: label for k in fields})
                metrics.append(twin)
        group["members"], group["metrics"] = members, metrics
        if group.get("parity"):
            group["parity"] = [REFERENCE_TUNED if p == REFERENCE else p for p in group["parity"]]
        result.append(group)
    return result


def _florence_config(quick, name="florence_tiny"):
    """A config reference resolved in the worker (`tf_cases.resolve_config`): the driver never
    imports TensorFlow or florence_keras."""
    if quick:
        return {"preset": "tiny_test", "image_size": 32}
    return {"preset": name, "image_size": 224}


def build_plan(quick, work_dir, only=None):
    """The CPU benchmark groups.

    Args:
        quick: bool, tiny models and sizes (a harness check, not a measurement).
        work_dir: scratch directory for checkpoints and the input-pipeline files.
        only: optional substring; keep the groups whose name contains it.

    Returns:
        `(groups, memory_plan)`.
    """
    swin = SWIN_TINY if quick else SWIN_T
    text = CLIP_TEXT_TINY if quick else CLIP_TEXT
    swin_dir = os.path.join(work_dir, "swin")
    text_dir = os.path.join(work_dir, "clip_text")
    peak_n = 256 if quick else 2048
    batch = 2 if quick else 8
    groups = []

    def swin_group(name, title, batch_size, train, patch_embedding="linear", target=None,
                   mfu_target=None):
        ours = {"label": "florence_keras", "side": "tf", "kind": "swin",
                "spec": {"model_dir": swin_dir, "batch": batch_size, "train": train,
                         "patch_embedding": patch_embedding}}
        ref = {"label": "transformers", "side": "torch", "kind": "swin",
               "spec": {"config": swin, "batch": batch_size, "train": train,
                        "model_dir": swin_dir}}
        members = [ref, ours, {"label": "matmul_f32", "side": "tf", "kind": "matmul",
                               "spec": {"n": peak_n, "dtype": "float32"}}]
        kind = "time_ratio" if patch_embedding == "linear" else "flop_rate_ratio"
        metric_name = ("speed-up vs transformers" if kind == "time_ratio"
                       else "FLOP/s vs transformers (conv FLOPs counted)")
        metrics = [{"name": metric_name, "type": kind, "num": "transformers",
                    "den": "florence_keras", "target": target}]
        if kind == "flop_rate_ratio":
            metrics.append({"name": "speed-up vs transformers (time only)", "type": "time_ratio",
                            "num": "transformers", "den": "florence_keras", "target": None})
        metrics.append({"name": "MFU (float32 matmul peak)", "type": "mfu",
                        "step": "florence_keras", "peak": "matmul_f32", "target": mfu_target})
        metrics.append({"name": "transformers MFU (float32 matmul peak)", "type": "mfu",
                        "step": "transformers", "peak": "matmul_f32", "target": None})
        groups.append({"name": name, "title": title, "members": members,
                       "parity": ["florence_keras", "transformers"] if patch_embedding == "linear"
                       else None, "metrics": metrics})

    swin_group("swin_t_forward_b1", "CoSwin-T, Swin mode: forward, batch 1", 1, False, target=1.25)
    swin_group("swin_t_forward_b8", f"CoSwin-T, Swin mode: forward, batch {batch}", batch, False,
               target=1.25, mfu_target=0.40)
    swin_group("swin_t_train_b8", f"CoSwin-T, Swin mode: forward + backward, batch {batch}", batch,
               True, target=1.0)
    swin_group("coswin_t_conv_forward_b8", f"CoSwin-T, conv embeddings: forward, batch {batch}",
               batch, False, patch_embedding="conv", target=1.25)
    swin_group("coswin_t_conv_train_b8",
               f"CoSwin-T, conv embeddings: forward + backward, batch {batch}", batch, True,
               patch_embedding="conv", target=1.0)

    for train, name, title in ((False, "text_forward_b8", "Text encoder vs CLIPTextModel: forward"),
                               (True, "text_train_b8",
                                "Text encoder vs CLIPTextModel: forward + backward")):
        members = [
            {"label": "transformers", "side": "torch", "kind": "clip_text",
             "spec": {"config": text, "batch": batch, "train": train, "model_dir": text_dir}},
            {"label": "florence_keras", "side": "tf", "kind": "clip_text",
             "spec": {"model_dir": text_dir, "batch": batch, "train": train}},
        ]
        groups.append({"name": name, "title": f"{title}, batch {batch}", "members": members,
                       "parity": ["florence_keras", "transformers"],
                       # The issue sets no target for the text tower (keras-hub's CLIP block).
                       "metrics": [{"name": "speed-up vs transformers", "type": "time_ratio",
                                    "num": "transformers", "den": "florence_keras",
                                    "target": None}]})

    florence = _florence_config(quick)
    step_batch = 4 if quick else 8
    members = [
        {"label": "step_float32", "side": "tf", "kind": "florence_step",
         "spec": {"config": florence, "batch": step_batch, "dtype": "float32"}},
        {"label": "step_mixed_bfloat16", "side": "tf", "kind": "florence_step", "key": "step_bf16",
         "spec": {"config": florence, "batch": step_batch, "dtype": "mixed_bfloat16"}},
        {"label": "matmul_f32", "side": "tf", "kind": "matmul",
         "spec": {"n": peak_n, "dtype": "float32"}},
        {"label": "matmul_bf16", "side": "tf", "kind": "matmul",
         "spec": {"n": peak_n, "dtype": "bfloat16"}},
    ]
    groups.append({
        "name": "florence_t_unicl_step",
        "title": f"FlorenceCLIP-T UniCL training step (AdamW), batch {step_batch}",
        "members": members, "parity": None,
        "metrics": [
            {"name": "mixed_bfloat16 speed-up over float32", "type": "time_ratio",
             "num": "step_float32", "den": "step_mixed_bfloat16", "target": None},
            {"name": "MFU float32 (float32 peak)", "type": "mfu", "step": "step_float32",
             "peak": "matmul_f32", "target": None},
            {"name": "MFU mixed_bfloat16 (bfloat16 peak)", "type": "mfu",
             "step": "step_mixed_bfloat16", "peak": "matmul_bf16", "target": 0.30},
            {"name": "bfloat16 / float32 matmul peak", "type": "time_ratio", "num": "matmul_f32",
             "den": "matmul_bf16", "target": None},
        ]})

    source = {"root": os.path.join(work_dir, "pipeline_data"),
              "num_images": 16 if quick else 256, "image_size": 64 if quick else 320}
    pipeline_batch = 8 if quick else 64
    size = 32 if quick else 224
    members = [
        {"label": f"jpeg_files_{fmt}" if fmt == "csv" else "tfrecord", "side": "tf",
         "kind": "input_pipeline",
         "spec": {"source": source, "data_format": fmt, "image_size": size,
                  "batch": pipeline_batch, "images": source["num_images"], "tokenize": True}}
        for fmt in ("csv", "tfrecord")
    ]
    members.append({"label": "step_mixed_bfloat16", "side": "tf", "reuse": "step_bf16"})
    groups.append({
        "name": "input_pipeline",
        "title": (f"Input pipeline: decode + random-resized-crop + flip + tokenise + batch "
                  f"{pipeline_batch}, {source['image_size']}px JPEGs -> {size}px, vs the "
                  "FlorenceCLIP-T mixed_bfloat16 step's consumption"),
        "members": members, "parity": None,
        "metrics": [
            {"name": "JPEG files: images/s over step samples/s", "type": "throughput_ratio",
             "num": "jpeg_files_csv", "den": "step_mixed_bfloat16", "target": 2.0},
            {"name": "TFRecord: images/s over step samples/s", "type": "throughput_ratio",
             "num": "tfrecord", "den": "step_mixed_bfloat16", "target": 2.0},
        ]})

    groups = with_reference_configs(groups)
    if only:
        groups = [g for g in groups if only in g["name"]]
    memory = {
        "config": _memory_config(quick),
        "chunk": 8 if quick else 64,
        "cache_batches": [16, 64] if quick else [256, 1024, 4096],
        "full_batches": [16] if quick else [256, 1024, 4096],
        "target": 1.3,
    }
    if only and only not in "gradient_cache_memory":
        memory = None
    return groups, memory


def _memory_config(quick):
    return _florence_config(True) if quick else MEMORY_MODEL


# `run_all.py --gpu` must fit in 8 minutes (a task lent an accelerator has ~15 minutes of device time,
# machine start included). Groups run in this order; one that would end past the budget is skipped.
GPU_TIME_BUDGET_S = 480
# Starting the TensorFlow worker on a GPU machine (import, CUDA initialisation), counted in the estimate.
GPU_WORKER_START_S = 40


def build_gpu_plan(quick, work_dir="/tmp/florence_bench_gpu"):
    """The `--gpu` plan: FlorenceCLIP-B (CoSwin-B) UniCL step on one accelerator.

    1. `florence_b_unicl_step_gpu`: the mixed_bfloat16 step (AdamW included), images/s and MFU against
       the device's bfloat16 matmul peak measured in the same rounds.
    2. `florence_b_xla_gpu`: the same step compiled with XLA (`jit_compile=True`) against the step above.
    3. `input_pipeline_gpu`: JPEG files and TFRecord decode + augment + tokenise, images/s and how many
       times the step's consumption they deliver (does the input pipeline keep the device fed?).

    Args:
        quick: tiny model and sizes (checks the plan end to end, also on a CPU with `--allow-cpu`).
        work_dir: scratch directory for the input-pipeline files.

    Returns:
        list of groups; each has `requires_gpu` and `estimate_s` (seconds: set-up, compile, rounds).
    """
    config = _florence_config(quick, "florence_base")
    batch = 4 if quick else 128
    peak_n = 256 if quick else 8192
    step = {"label": "step_mixed_bfloat16", "side": "tf", "kind": "florence_step", "key": "step_bf16_gpu",
            "spec": {"config": config, "batch": batch, "dtype": "mixed_bfloat16"}}
    peak = {"label": "matmul_bf16", "side": "tf", "kind": "matmul", "key": "matmul_bf16_gpu",
            "spec": {"n": peak_n, "dtype": "bfloat16"}}
    xla = {"label": "step_mixed_bfloat16_xla", "side": "tf", "kind": "florence_step",
           "spec": {"config": config, "batch": batch, "dtype": "mixed_bfloat16", "jit_compile": True}}
    source = {"root": os.path.join(work_dir, "pipeline_data"), "num_images": 16 if quick else 1024,
              "image_size": 64 if quick else 320}
    pipeline_batch = 8 if quick else batch
    size = 32 if quick else 224
    pipelines = [
        {"label": "jpeg_files_csv" if fmt == "csv" else "tfrecord", "side": "tf", "kind": "input_pipeline",
         "spec": {"source": source, "data_format": fmt, "image_size": size, "batch": pipeline_batch,
                  "images": source["num_images"], "tokenize": True}}
        for fmt in ("csv", "tfrecord")
    ]
    reuse_step = {"label": "step_mixed_bfloat16", "side": "tf", "reuse": "step_bf16_gpu"}
    reuse_peak = {"label": "matmul_bf16", "side": "tf", "reuse": "matmul_bf16_gpu"}
    title = f"FlorenceCLIP-B (CoSwin-B, {config.get('image_size', 224)}px) UniCL step, mixed_bfloat16, batch {batch}"
    # Estimates for an H100-class GPU (untested on a GPU: generous); the CPU-only quick plan is tiny.
    scale = 0.1 if quick else 1.0
    return [
        {"name": "florence_b_unicl_step_gpu", "title": f"{title}, GPU", "requires_gpu": True,
         "estimate_s": 150 * scale, "members": [step, peak], "parity": None,
         "metrics": [
             {"name": "images/s (mixed_bfloat16)", "type": "throughput", "step": "step_mixed_bfloat16",
              "target": None},
             {"name": "MFU mixed_bfloat16 (device bfloat16 matmul peak)", "type": "mfu",
              "step": "step_mixed_bfloat16", "peak": "matmul_bf16", "target": None},
         ]},
        {"name": "florence_b_xla_gpu", "title": f"{title}: XLA (jit_compile) on vs off, GPU",
         "requires_gpu": True, "estimate_s": 180 * scale, "members": [reuse_step, xla, reuse_peak],
         "parity": None,
         "metrics": [
             {"name": "XLA speed-up (jit_compile on / off)", "type": "time_ratio",
              "num": "step_mixed_bfloat16", "den": "step_mixed_bfloat16_xla", "target": None},
             {"name": "images/s with XLA", "type": "throughput", "step": "step_mixed_bfloat16_xla",
              "target": None},
             {"name": "MFU with XLA (device bfloat16 matmul peak)", "type": "mfu",
              "step": "step_mixed_bfloat16_xla", "peak": "matmul_bf16", "target": None},
         ]},
        {"name": "input_pipeline_gpu",
         "title": (f"Input pipeline: decode + random-resized-crop + flip + tokenise + batch {pipeline_batch}, "
                   f"{source['image_size']}px JPEGs -> {size}px, vs the GPU step's consumption"),
         "requires_gpu": True, "estimate_s": 90 * scale, "members": pipelines + [reuse_step], "parity": None,
         "metrics": [
             {"name": "JPEG files: images/s", "type": "throughput", "step": "jpeg_files_csv", "target": None},
             {"name": "TFRecord: images/s", "type": "throughput", "step": "tfrecord", "target": None},
             {"name": "JPEG files: images/s over step samples/s", "type": "throughput_ratio",
              "num": "jpeg_files_csv", "den": "step_mixed_bfloat16", "target": 1.0},
             {"name": "TFRecord: images/s over step samples/s", "type": "throughput_ratio",
              "num": "tfrecord", "den": "step_mixed_bfloat16", "target": 1.0},
         ]},
    ]


def plan_summary(groups, memory=None, time_budget_s=None):
    """The plan as text lines (what `run_all.py --dry_run` prints): groups, members, specs, estimates."""
    lines = []
    estimated = any(g.get("estimate_s") is not None for g in groups)
    total = GPU_WORKER_START_S if estimated and any(g.get("requires_gpu") for g in groups) else 0.0
    for group in groups:
        estimate = group.get("estimate_s")
        total += estimate or 0.0
        extra = f", estimate {estimate:.0f} s" if estimate is not None else ""
        extra += ", needs a GPU" if group.get("requires_gpu") else ""
        lines.append(f"{group['name']}: {group['title']}{extra}")
        for member in group["members"]:
            if "reuse" in member:
                lines.append(f"  - {member['label']} [{member['side']}] reuses {member['reuse']}")
                continue
            spec = {k: v for k, v in member["spec"].items() if k not in ("model_dir", "source")}
            lines.append(f"  - {member['label']} [{member['side']}: {member['kind']}] {spec}")
        for metric in group["metrics"]:
            target = "" if metric.get("target") is None else f" (target {metric['target']})"
            lines.append(f"  * {metric['name']}{target}")
    if memory:
        lines.append(f"gradient_cache_memory: chunk {memory['chunk']}, cache batches "
                     f"{memory['cache_batches']}, no-cache batches {memory['full_batches']}")
    if estimated:
        lines.append(f"estimated total {total:.0f} s, worker start included"
                     + (f" (budget {time_budget_s:.0f} s)" if time_budget_s else ""))
    return lines

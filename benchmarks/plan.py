"""What `run_all.py` measures: the benchmark groups, full size and `--quick` tiny size.

A group is a set of members (cases in the TF or torch worker) that run in interleaved rounds,
and metrics computed per round from the members' times, then reduced to the median over rounds.
Metric types:

* `time_ratio`: time(num) / time(den) — with num the reference, a speed-up of den.
* `flop_rate_ratio`: (FLOPs/s of num) / (FLOPs/s of den) — for models doing different work.
* `mfu`: (FLOPs/s of step) / (FLOPs/s of the peak matmul measured in the same round).
* `throughput_ratio`: (items/s of num) / (items/s of den).
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


def build_gpu_plan(quick):
    """The `--gpu` group: CoSwin-B (florence_base) UniCL step, mixed_bfloat16, vs the bf16 peak."""
    config = _florence_config(quick, "florence_base")
    batch = 4 if quick else 64
    peak_n = 512 if quick else 8192
    members = [
        {"label": "step_mixed_bfloat16", "side": "tf", "kind": "florence_step",
         "spec": {"config": config, "batch": batch, "dtype": "mixed_bfloat16"}},
        {"label": "matmul_bf16", "side": "tf", "kind": "matmul",
         "spec": {"n": peak_n, "dtype": "bfloat16"}},
    ]
    return [{
        "name": "florence_b_unicl_step_gpu",
        "title": f"FlorenceCLIP-B (CoSwin-B) UniCL step, mixed_bfloat16, batch {batch}, GPU",
        "members": members, "parity": None, "requires_gpu": True,
        "metrics": [{"name": "MFU mixed_bfloat16 (device bfloat16 matmul peak)", "type": "mfu",
                     "step": "step_mixed_bfloat16", "peak": "matmul_bf16", "target": None}],
    }]

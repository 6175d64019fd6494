"""Analytic FLOP counts of CoSwin / Swin, the CLIP-style text encoder and the dual encoder.

Convention (shared/docs/PERF.md): FLOPs = 2 x multiply-adds, counted for every matrix product and
convolution the model computes — projections, convolutions, and the two attention products
(scores = q k^T and context = p v). Element-wise work (norms, softmax, GELU, residual adds) is not
counted, as in every FLOP counter in use (fvcore, torch.utils.flop_counter).

Two figures for transformers' Swin-T at 224² differ only by the attention products:

* `torch.utils.flop_counter.FlopCounterMode` on transformers' default (SDPA) attention reports
  8.70 GFLOP per image: it does not see inside `scaled_dot_product_attention` on CPU. That is the
  "8.7 GFLOP" of PERF.md and equals `swin_flops(...)["dense"]` here.
* With `attn_implementation="eager"` it reports 8.98 GFLOP, equal to `swin_flops(...)["total"]`.

MFU uses the total (what the machine actually computes). A training step costs 3 x forward
(forward, plus two products of the same size per product in the backward pass).
"""

import math


def _window_rule(extent_h, extent_w, window):
    """Swin's rule: a map no larger than the window uses a window of its own size."""
    smallest = min(extent_h, extent_w)
    if smallest <= window:
        return smallest
    return window


def swin_flops(embed_dim, depths, num_heads, window_size, image_shape=(224, 224, 3), mlp_ratio=4.0,
               patch_embedding="linear", patch_size=4, **unused):
    """Forward FLOPs of one image through a `CoSwinBackbone` config.

    Accepts the `CoSwinBackbone` constructor kwargs (extra keys such as `drop_path_rate` are ignored).

    Args:
        embed_dim: int, first-stage width.
        depths: list of ints.
        num_heads: list of ints.
        window_size: int.
        image_shape: `(height, width, channels)`.
        mlp_ratio: float.
        patch_embedding: `"linear"` (Swin: 4x4 patchify, 2x2 linear merging) or `"conv"` (CoSwin:
            7x7/4 conv stem, 3x3/2 conv merging).
        patch_size: int, the stem stride.

    Returns:
        dict of FLOPs: `"stem"`, `"merging"`, `"projections"` (qkv, output, MLP), `"attention"` (the
        two attention products, padded windows included), `"dense"` (everything but attention) and
        `"total"`.

    Example:
    >>> round(swin_flops(96, [2, 2, 6, 2], [3, 6, 12, 24], 7)["total"] / 1e9, 2)
    8.98
    """
    del num_heads, unused  # per-head splits do not change the count
    if patch_embedding not in ("linear", "conv"):
        raise ValueError(f"`patch_embedding` must be 'linear' or 'conv'. Received: {patch_embedding!r}")
    height, width, channels = image_shape
    h, w = math.ceil(height / patch_size), math.ceil(width / patch_size)
    kernel = patch_size if patch_embedding == "linear" else 7
    stem = 2 * h * w * embed_dim * kernel * kernel * channels
    merging = projections = attention = 0
    for stage, depth in enumerate(depths):
        dim = embed_dim * 2**stage
        if stage > 0:
            prev = dim // 2
            h, w = math.ceil(h / 2), math.ceil(w / 2)
            if patch_embedding == "linear":
                merging += 2 * h * w * (4 * prev) * dim
            else:
                merging += 2 * h * w * 9 * prev * dim
        win = _window_rule(h, w, window_size)
        padded = math.ceil(h / win) * win * math.ceil(w / win) * win
        tokens = h * w
        hidden = int(dim * mlp_ratio)
        per_block_proj = 2 * padded * dim * 3 * dim + 2 * padded * dim * dim
        per_block_mlp = 2 * tokens * dim * hidden * 2
        # q k^T and p v: each window of N = win² tokens costs N * N * dim multiply-adds.
        per_block_attention = 2 * 2 * padded * (win * win) * dim
        projections += depth * (per_block_proj + per_block_mlp)
        attention += depth * per_block_attention
    dense = stem + merging + projections
    return {
        "stem": stem,
        "merging": merging,
        "projections": projections,
        "attention": attention,
        "dense": dense,
        "total": dense + attention,
    }


def text_encoder_flops(hidden_dim, num_layers, num_heads=None, intermediate_dim=None,
                       max_sequence_length=77, **unused):
    """Forward FLOPs of one token sequence through a `FlorenceTextEncoder` / CLIP text config.

    Accepts the `FlorenceTextEncoder` constructor kwargs. The full `L x L` attention is counted (the
    causal mask hides half of it, but both implementations compute it).

    Returns:
        dict: `"projections"`, `"attention"`, `"dense"`, `"total"`.

    Example:
    >>> round(text_encoder_flops(512, 12)["dense"] / 1e9, 2)
    5.81
    """
    del num_heads, unused
    intermediate_dim = intermediate_dim or 4 * hidden_dim
    length = max_sequence_length
    projections = num_layers * (2 * length * hidden_dim * 4 * hidden_dim
                                + 2 * 2 * length * hidden_dim * intermediate_dim)
    attention = num_layers * 2 * 2 * length * length * hidden_dim
    return {"projections": projections, "attention": attention, "dense": projections,
            "total": projections + attention}


def florence_flops(config):
    """Forward FLOPs of one (image, text) pair through a Florence dual encoder.

    Args:
        config: `florence_keras.models.presets.architecture_config(...)`-style dict with
            `image_encoder`, `text_encoder` and `projection_dim`.

    Returns:
        dict: `"image"`, `"text"`, `"projections"`, `"forward"` (all per pair) and `"train_step"`
        (3 x forward; the UniCL loss's `B x B` products are added by `unicl_loss_flops`).
    """
    image_kwargs = dict(config["image_encoder"])
    image_kwargs.setdefault("patch_embedding", "conv")
    image = swin_flops(**image_kwargs)["total"]
    text_kwargs = dict(config["text_encoder"])
    text = text_encoder_flops(**text_kwargs)["total"]
    image_dim = image_kwargs["embed_dim"] * 2 ** (len(image_kwargs["depths"]) - 1)
    text_dim = text_kwargs["hidden_dim"]
    projection = 2 * (image_dim + text_dim) * config["projection_dim"]
    forward = image + text + projection
    return {"image": image, "text": text, "projections": projection, "forward": forward,
            "train_step": 3 * forward}


def unicl_loss_flops(batch_size, projection_dim):
    """FLOPs of the UniCL loss's two `B x B` logit products, forward and backward (3x)."""
    return 3 * 2 * 2 * batch_size * batch_size * projection_dim

"""Inflating a trained 2-D CoSwin into a `VideoCoSwinBackbone` (I3D / Video Swin's `inflate_weights`).

Rules (Video Swin's, with the conv embeddings of CoSwin):
* every conv token embedding kernel `(kh, kw, cin, cout)` becomes `(kt, kh, kw, cin, cout)`: copied along time and
  divided by `kt` (`inflation="mean"`, I3D), or put in the middle time slice with zeros elsewhere
  (`inflation="center"`);
* each block's 2-D relative position table `(2Wh−1)(2Ww−1)` rows is resized (bicubic) when the spatial window
  changes, then repeated `2Wt−1` times along time (every temporal offset starts with the same bias);
* everything else (LayerNorms, q/k/v, projections, MLPs, patch merging, the final norm) is copied unchanged.

Exactness (the test checks it): on a clip of identical frames the video model's pooled feature equals the 2-D
model's on that frame when, along time, nothing is padded and no kernel overlaps the padding: attention over
`Wt` identical copies of each key with the same bias is the 2-D softmax, and a `kt`-frame average of identical
frames is the frame. With `inflation="mean"` and a temporal kernel > its stride, the symmetric zero padding of
the conv embeddings at the first/last frames sees fewer real frames (e.g. 2 of 3), so those tokens differ;
`inflation="center"` is exact there too. Windows that do not divide the number of time steps pad with zero
tokens, which enter the softmax; a changed spatial window resizes the table, which is not exact either.
"""

import numpy as np
from keras import ops

from florence_keras.models.coswin_backbone import CoSwinBackbone
from florence_keras.models.video_coswin_backbone import VideoCoSwinBackbone
from florence_keras.models.video_coswin_backbone import stage_windows

INFLATIONS = ("mean", "center")


def image_encoder_of(model):
    """The `CoSwinBackbone` of a CoSwin, a FlorenceBackbone, a FlorenceCLIP (or any Task holding one)."""
    for _ in range(3):
        if isinstance(model, CoSwinBackbone):
            return model
        if hasattr(model, "image_encoder"):
            model = model.image_encoder
        elif hasattr(model, "backbone"):
            model = model.backbone
        else:
            break
    if isinstance(model, CoSwinBackbone):
        return model
    raise ValueError(f"Expected a CoSwinBackbone or a model holding one (FlorenceCLIP, FlorenceBackbone). "
                     f"Received: {type(model).__name__}")


def inflate_kernel(kernel, temporal_size, inflation="mean"):
    """`(kh, kw, cin, cout)` -> `(kt, kh, kw, cin, cout)` (copied / kt, or centred)."""
    kernel = np.asarray(kernel)
    if inflation == "mean":
        return np.repeat(kernel[None], temporal_size, axis=0) / temporal_size
    out = np.zeros((temporal_size,) + kernel.shape, kernel.dtype)
    out[temporal_size // 2] = kernel
    return out


def inflate_bias_table(table, image_window, video_window):
    """A 2-D `(2Wh−1)(2Ww−1) x heads` table -> the 3-D `(2Wt−1)(2Wh−1)(2Ww−1) x heads` table.

    Args:
        table: the 2-D table.
        image_window: `(Wh, Ww)` the 2-D table is for.
        video_window: `(Wt, Wh', Ww')`; when `(Wh', Ww')` differs the table is resized bicubically (as Video
            Swin's `inflate_weights`).
    """
    table = np.asarray(table, np.float32)
    heads = table.shape[1]
    source = [2 * w - 1 for w in image_window]
    target = [2 * w - 1 for w in video_window[1:]]
    grid = table.reshape(source + [heads])
    if source != target:
        grid = np.asarray(ops.image.resize(grid, target, interpolation="bicubic", antialias=False))
    grid = np.repeat(grid[None], 2 * video_window[0] - 1, axis=0)
    return grid.reshape(-1, heads)


def _copy_layer(target, source):
    target.set_weights([np.asarray(w) for w in source.get_weights()])


def inflate_coswin(image_backbone, num_frames=8, temporal_kernel=3, temporal_stride=2, window=None,
                   inflation="mean", drop_path_rate=None, image_size=None, dtype=None):
    """A `VideoCoSwinBackbone` with a 2-D CoSwin's weights inflated along time.

    Args:
        image_backbone: a `CoSwinBackbone`, or a FlorenceCLIP / FlorenceBackbone (its image encoder is used).
        num_frames: int, frames of the functional model's input (any frame count runs via `forward_features`).
        temporal_kernel: int or `(stem, stages)`, the temporal kernel of the conv embeddings (conv CoSwin only;
            a linear-embedding Swin's stem kernel is its stride).
        temporal_stride: int, the stem's temporal stride.
        window: the video windows: an int `Wt` (the 2-D spatial window, `Wt` frames), a `(t, h, w)`, or one per
            stage. Default: `(2, W, W)` with the 2-D window `W`.
        inflation: `"mean"` (copy / kt) or `"center"` (the middle slice).
        drop_path_rate: optional float; default the 2-D backbone's.
        image_size: optional int or `(h, w)`, the frames' size; default the 2-D backbone's.
        dtype: optional dtype policy; default the 2-D backbone's.

    Returns:
        `VideoCoSwinBackbone`.
    """
    coswin = image_encoder_of(image_backbone)
    if inflation not in INFLATIONS:
        raise ValueError(f"`inflation` must be one of {INFLATIONS}. Received: inflation={inflation!r}")
    num_stages = len(coswin.depths)
    spatial = coswin.window_size
    if window is None:
        window = (2, spatial, spatial)
    if isinstance(window, int):
        window = (window, spatial, spatial)
    windows = stage_windows(window, num_stages)
    if image_size is None:
        height, width = coswin.image_shape[:2]
    elif isinstance(image_size, int):
        height = width = image_size
    else:
        height, width = image_size
    linear = coswin.patch_embedding == "linear"
    if linear:
        temporal_kernel = (temporal_stride, 1)  # the second is unused (patch merging has no kernel)
    video = VideoCoSwinBackbone(
        embed_dim=coswin.embed_dim, depths=coswin.depths, num_heads=coswin.num_heads, window_size=windows,
        mlp_ratio=coswin.mlp_ratio, qkv_bias=coswin.qkv_bias, dropout=coswin.dropout,
        attention_dropout=coswin.attention_dropout,
        drop_path_rate=coswin.drop_path_rate if drop_path_rate is None else drop_path_rate,
        patch_embedding=coswin.patch_embedding, patch_size=(temporal_stride, coswin.patch_size, coswin.patch_size),
        temporal_kernel=temporal_kernel, video_shape=(num_frames, height, width, coswin.image_shape[2]),
        layer_norm_epsilon=coswin.layer_norm_epsilon, dtype=dtype or coswin.dtype_policy)

    def inflate_embedding(target, source):
        kt = target.conv.kernel.shape[0]
        target.conv.kernel.assign(inflate_kernel(source.conv.kernel, kt, inflation if not linear else "mean"))
        target.conv.bias.assign(source.conv.bias)
        _copy_layer(target.norm, source.norm)

    inflate_embedding(video.stem, coswin.stem)
    for stage in range(num_stages):
        if stage > 0:
            target, source = video.downsamplers[stage - 1], coswin.downsamplers[stage - 1]
            if linear:
                _copy_layer(target, source)
            else:
                inflate_embedding(target, source)
        for target, source in zip(video.stages[stage], coswin.stages[stage]):
            for name in ("norm_before", "norm_after", "mlp_dense_1", "mlp_dense_2"):
                _copy_layer(getattr(target, name), getattr(source, name))
            _copy_layer(target.attention.qkv, source.attention.qkv)
            _copy_layer(target.attention.projection, source.attention.projection)
            target.attention.relative_position_bias_table.assign(inflate_bias_table(
                source.attention.relative_position_bias_table, source.window_size, target.window_size))
    _copy_layer(video.final_norm, coswin.final_norm)
    return video

"""Converts keras-cv 0.9's `VideoSwinBackbone` into `VideoCoSwinBackbone(patch_embedding="linear")`.

The two compute the same function (proved in the converter's test to 1e-5 on random weights); the mapping is
one-to-one except for the relative position bias table of a stage whose map is smaller than the window on some
axis: keras-cv then builds a smaller table for the shrunk window, ours keeps the full window's table and reads the
shrunk window's offsets out of it (so weights do not depend on the input size). The converter writes keras-cv's
rows at the offsets they stand for and zeros elsewhere (rows no input of this size reads).

keras-cv builds the bias index with `meshgrid(..., indexing="xy")`, which swaps the height and width offsets
inside a window; for square windows (the usual (t, 7, 7)) that is the standard index. For a non-square effective
window the swapped index is not a relative position bias at all (two token pairs with the same offset can read
different rows); the converter refuses such a model with a clear error.
"""

import numpy as np

from florence_keras.layers import window_utils
from florence_keras.models.video_coswin_backbone import VideoCoSwinBackbone


def _keras_cv_relative_index(window):
    """keras-cv's `get_relative_position_index` in NumPy (its xy-meshgrid included)."""
    depth, height, width = window
    y_y, z_z, x_x = np.meshgrid(np.arange(width), np.arange(depth), np.arange(height))  # indexing="xy"
    coords = np.stack([z_z, y_y, x_x]).reshape(3, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0)
    return ((rel[..., 0] + depth - 1) * (2 * height - 1) * (2 * width - 1)
            + (rel[..., 1] + height - 1) * (2 * width - 1) + rel[..., 2] + width - 1)


def convert_bias_table(table, keras_cv_window, window):
    """Our full-window bias table from keras-cv's table of its (possibly shrunk) `keras_cv_window`.

    Args:
        table: `(prod(2 * keras_cv_window - 1), heads)` array.
        keras_cv_window: the window keras-cv's block attends with (after `get_window_size`).
        window: our stage's (full) window.

    Returns:
        `(prod(2 * window - 1), heads)` float32 array.
    """
    keras_cv_window, window = tuple(keras_cv_window), tuple(window)
    ours = window_utils.relative_position_index(keras_cv_window, window).reshape(-1)
    theirs = _keras_cv_relative_index(keras_cv_window).reshape(-1)
    out = np.zeros((int(np.prod([2 * w - 1 for w in window])), table.shape[1]), np.float32)
    seen = {}
    for row, source in zip(ours, theirs):
        if seen.setdefault(int(row), int(source)) != int(source):
            raise ValueError(
                f"keras-cv's relative position index for the non-square window {keras_cv_window} is not a "
                "function of the relative offset (its meshgrid swaps height and width), so no relative "
                "position bias reproduces it. Use square spatial windows / frames.")
        out[row] = table[source]
    return out


def _copy(target_layer, source_layer):
    values = [np.asarray(w) for w in source_layer.get_weights()]
    target_layer.set_weights(values)


def video_coswin_from_keras_cv(model, video_shape=None, dtype=None):
    """A `VideoCoSwinBackbone(patch_embedding="linear")` with the weights of a keras-cv `VideoSwinBackbone`.

    Args:
        model: a built `keras_cv.models.VideoSwinBackbone` (`patch_norm=True`, `qk_scale=None`,
            `include_rescaling=False`: keras-cv's rescaling is preprocessing, which our backbone leaves to the
            image converter).
        video_shape: optional `(frames, height, width, channels)`; default the keras-cv model's input shape.
        dtype: optional dtype policy.

    Returns:
        `VideoCoSwinBackbone` whose `"feature_map"` equals the keras-cv model's output.

    Example:
    >>> import keras_cv  # doctest: +SKIP
    >>> theirs = keras_cv.models.VideoSwinBackbone(input_shape=(4, 32, 32, 3), embed_dim=8, depths=[2, 2],
    ...                                            num_heads=[1, 2], window_size=[2, 4, 4])  # doctest: +SKIP
    >>> ours = video_coswin_from_keras_cv(theirs)  # doctest: +SKIP
    """
    config = model.get_config()
    if not config.get("patch_norm", True):
        raise ValueError("Only keras-cv Video Swin with `patch_norm=True` converts (our stem always normalises).")
    if config.get("qk_scale") is not None:
        raise ValueError(f"`qk_scale` must be None (head_dim ** -0.5). Received: qk_scale={config['qk_scale']}")
    if config.get("include_rescaling"):
        raise ValueError("Build the keras-cv model with `include_rescaling=False`: rescaling and normalisation "
                         "belong to the preprocessor here.")
    video_shape = tuple(video_shape or tuple(model.input.shape[1:]))
    window = tuple(int(w) for w in config["window_size"])
    depths = list(config["depths"])
    ours = VideoCoSwinBackbone(
        embed_dim=int(config["embed_dim"]), depths=depths, num_heads=list(config["num_heads"]),
        window_size=window, mlp_ratio=float(config["mlp_ratio"]), qkv_bias=bool(config["qkv_bias"]),
        dropout=float(config["drop_rate"]), attention_dropout=float(config["attn_drop_rate"]),
        drop_path_rate=float(config["drop_path_rate"]), patch_embedding="linear",
        patch_size=tuple(int(p) for p in config["patch_size"]), video_shape=video_shape, dtype=dtype)

    embedding = model.get_layer("videoswin_patching_and_embedding")
    _copy(ours.stem.conv, embedding.proj)
    _copy(ours.stem.norm, embedding.norm)
    for stage in range(len(depths)):
        basic = model.get_layer(f"videoswin_basic_layer_{stage + 1}")
        for i, (source, target) in enumerate(zip(basic.blocks, ours.stages[stage])):
            _copy(target.norm_before, source.norm1)
            _copy(target.norm_after, source.norm2)
            _copy(target.attention.qkv, source.attn.qkv)
            _copy(target.attention.projection, source.attn.proj)
            _copy(target.mlp_dense_1, source.mlp.fc1)
            _copy(target.mlp_dense_2, source.mlp.fc2)
            table = convert_bias_table(np.asarray(source.attn.relative_position_bias_table),
                                       source.attn.window_size, target.window_size)
            target.attention.relative_position_bias_table.assign(table)
        if stage + 1 < len(depths):
            merge = ours.downsamplers[stage]
            _copy(merge.norm, basic.downsample.norm)
            _copy(merge.projection, basic.downsample.reduction)
    _copy(ours.final_norm, model.get_layer("videoswin_top_norm"))
    return ours

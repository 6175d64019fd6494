"""The standard monocular-depth metrics (Eigen et al. 2014), in NumPy, masked, optionally median-scaled.

Every metric is computed per image over its valid pixels (ground truth finite, `> min_depth` and, when given,
`<= max_depth`; the prediction is clipped to `[min_depth, max_depth]`, as the KITTI / NYU protocols do) and then
averaged over the images that have a valid pixel (monodepth2's convention):

    AbsRel = mean(|p - g| / g)        SqRel = mean((p - g)² / g)
    RMSE   = sqrt(mean((p - g)²))     RMSE(log) = sqrt(mean((log p - log g)²))
    δ<t    = fraction of pixels with max(p / g, g / p) < t,  t = 1.25, 1.25², 1.25³

`median_scaling=True` multiplies each prediction by `median(g) / median(p)` over the image's valid pixels
before scoring (the protocol for models without metric scale); the result dict says which was used.
"""

import numpy as np

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")
DELTA_THRESHOLDS = {"delta1": 1.25, "delta2": 1.25**2, "delta3": 1.25**3}


def _as_batch(array, name):
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"`{name}` must be depth maps (H, W) or (B, H, W). Received shape: {array.shape}")
    return array


def depth_metrics_per_image(y_true, y_pred, min_depth=1e-3, max_depth=None, median_scaling=False, mask=None):
    """The metrics of each image.

    Args:
        y_true: ground-truth depth `(B, H, W)` or `(H, W)` in metres; 0 / non-finite = invalid.
        y_pred: predicted depth, same shape.
        min_depth: float > 0; ground truth at or below it is invalid, predictions are clipped up to it.
        max_depth: optional float; ground truth above it is invalid, predictions are clipped down to it.
        median_scaling: bool, rescale each prediction by `median(g) / median(p)` first.
        mask: optional bool `(B, H, W)`, ANDed with the ground truth's validity.

    Returns:
        dict: each of `METRIC_NAMES` -> float64 `(B,)` (NaN for an image without a valid pixel), and
        `num_pixels` -> int `(B,)`.
    """
    if min_depth is None or min_depth <= 0:
        raise ValueError(f"`min_depth` must be > 0. Received: min_depth={min_depth!r}")
    if max_depth is not None and max_depth <= min_depth:
        raise ValueError(f"`max_depth` must exceed `min_depth`. Received: max_depth={max_depth!r}")
    g, p = _as_batch(y_true, "y_true"), _as_batch(y_pred, "y_pred")
    if g.shape != p.shape:
        raise ValueError(f"`y_true` and `y_pred` differ in shape: {g.shape} vs {p.shape}")
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(g) & (g > min_depth)
        if max_depth is not None:
            valid &= g <= max_depth
    if mask is not None:
        valid &= _as_batch(mask, "mask").astype(bool)
    upper = np.inf if max_depth is None else max_depth
    results = {name: np.full(len(g), np.nan) for name in METRIC_NAMES}
    results["num_pixels"] = valid.sum(axis=(1, 2)).astype(np.int64)
    for i in range(len(g)):
        gt, pred = g[i][valid[i]], p[i][valid[i]]
        if gt.size == 0:
            continue
        if not np.all(np.isfinite(pred)):
            raise ValueError(f"Prediction {i} has non-finite values on valid pixels.")
        if median_scaling:
            pred = pred * (np.median(gt) / max(np.median(pred), 1e-12))
        pred = np.clip(pred, min_depth, upper)
        ratio = np.maximum(pred / gt, gt / pred)
        results["abs_rel"][i] = np.mean(np.abs(pred - gt) / gt)
        results["sq_rel"][i] = np.mean((pred - gt) ** 2 / gt)
        results["rmse"][i] = np.sqrt(np.mean((pred - gt) ** 2))
        results["rmse_log"][i] = np.sqrt(np.mean((np.log(pred) - np.log(gt)) ** 2))
        for name, threshold in DELTA_THRESHOLDS.items():
            results[name][i] = np.mean(ratio < threshold)
    return results


def average_depth_metrics(per_image):
    """Means over the images with a valid pixel of `depth_metrics_per_image`'s (possibly concatenated) arrays.

    Returns:
        dict of floats (`METRIC_NAMES`), `num_images` (scored) and `num_pixels` (total valid).
    """
    scored = np.asarray(per_image["num_pixels"]) > 0
    if not scored.any():
        raise ValueError("No image has a valid ground-truth pixel; nothing to score.")
    summary = {name: float(np.mean(np.asarray(per_image[name])[scored])) for name in METRIC_NAMES}
    summary["num_images"] = int(scored.sum())
    summary["num_pixels"] = int(np.sum(per_image["num_pixels"]))
    return summary


def depth_metrics(y_true, y_pred, min_depth=1e-3, max_depth=None, median_scaling=False, mask=None):
    """AbsRel, SqRel, RMSE, RMSE(log), δ<1.25, δ<1.25², δ<1.25³ averaged over images (see the module docstring).

    Returns:
        dict of floats, with `median_scaling` (bool), `num_images` and `num_pixels`.

    Example:
    >>> m = depth_metrics([[2.0, 4.0]], [[2.0, 5.0]])  # ratios 1 and 1.25 (not < 1.25)
    >>> round(m["abs_rel"], 4), m["delta1"], m["median_scaling"]
    (0.125, 0.5, False)
    """
    per_image = depth_metrics_per_image(y_true, y_pred, min_depth=min_depth, max_depth=max_depth,
                                        median_scaling=median_scaling, mask=mask)
    return dict(average_depth_metrics(per_image), median_scaling=bool(median_scaling))


class DepthMetricsAccumulator:
    """Collects per-image metrics batch by batch; `result()` averages them (`average_depth_metrics`).

    Args:
        min_depth, max_depth, median_scaling: as `depth_metrics_per_image`.
    """

    def __init__(self, min_depth=1e-3, max_depth=None, median_scaling=False):
        self.kwargs = dict(min_depth=min_depth, max_depth=max_depth, median_scaling=median_scaling)
        self._parts = []

    def update(self, y_true, y_pred, mask=None):
        self._parts.append(depth_metrics_per_image(y_true, y_pred, mask=mask, **self.kwargs))

    def per_image(self):
        keys = METRIC_NAMES + ("num_pixels",)
        if not self._parts:
            return {key: np.zeros(0) for key in keys}
        return {key: np.concatenate([part[key] for part in self._parts]) for key in keys}

    def result(self):
        return dict(average_depth_metrics(self.per_image()), median_scaling=bool(self.kwargs["median_scaling"]))

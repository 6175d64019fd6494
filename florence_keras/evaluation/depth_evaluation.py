"""Scoring a `FlorenceDepthEstimator` on image-depth pairs: metrics with and without median scaling, a figure."""

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from florence_keras.evaluation.depth_metrics import DepthMetricsAccumulator


def evaluate_depth(estimator, images, depth, batch_size=32, min_depth=1e-3, max_depth=None):
    """Predicts depth for raw images and scores it against the ground truth.

    Args:
        estimator: a `FlorenceDepthEstimator` (its `predict` resizes each input and returns depth at the input's
            resolution, so the ground truth is scored at its own resolution).
        images: uint8 `(N, H, W, 3)`.
        depth: float32 `(N, H, W)` metres (0 = invalid).
        batch_size: images per forward pass.
        min_depth, max_depth: the scoring range (see `depth_metrics`).

    Returns:
        dict: `metrics` (no median scaling), `metrics_median_scaled`, `predictions` float32 `(N, H, W)`.
    """
    raw = DepthMetricsAccumulator(min_depth=min_depth, max_depth=max_depth, median_scaling=False)
    scaled = DepthMetricsAccumulator(min_depth=min_depth, max_depth=max_depth, median_scaling=True)
    predictions = []
    for start in range(0, len(images), batch_size):
        pred = estimator.predict(images[start:start + batch_size], batch_size=batch_size)
        raw.update(depth[start:start + batch_size], pred)
        scaled.update(depth[start:start + batch_size], pred)
        predictions.append(pred)
    return {"metrics": raw.result(), "metrics_median_scaled": scaled.result(),
            "predictions": np.concatenate(predictions)}


def plot_depth_examples(images, depth, predictions, path, max_rows=4, title=None):
    """Saves a PNG with one row per example: image | ground truth | prediction | |error| (invalid pixels black).

    Ground truth and prediction share one colour scale per row; the error panel shows |pred − gt| in metres.
    """
    rows = min(max_rows, len(images))
    if rows < 1:
        raise ValueError("No example to plot.")
    figure = Figure(figsize=(10, 2.5 * rows))
    FigureCanvasAgg(figure)
    for row in range(rows):
        gt, pred = depth[row], predictions[row]
        valid = gt > 0
        low = float(min(gt[valid].min(), pred.min())) if valid.any() else float(pred.min())
        high = float(max(gt[valid].max(), pred.max())) if valid.any() else float(pred.max())
        error = np.where(valid, np.abs(pred - gt), np.nan)
        panels = ((images[row], "image", {}),
                  (np.where(valid, gt, np.nan), "ground truth (m)", {"vmin": low, "vmax": high, "cmap": "magma_r"}),
                  (pred, "prediction (m)", {"vmin": low, "vmax": high, "cmap": "magma_r"}),
                  (error, "|error| (m)", {"vmin": 0.0, "cmap": "viridis"}))
        for col, (picture, label, kwargs) in enumerate(panels):
            axis = figure.add_subplot(rows, 4, row * 4 + col + 1)
            axis.set_facecolor("black")
            shown = axis.imshow(picture, **kwargs)
            if col:
                figure.colorbar(shown, ax=axis, fraction=0.046)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(label)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    figure.savefig(path, dpi=80)
    return path

"""PNG figures for evaluation reports: confusion matrix, retrieval grids, accuracy vs shots.

Figures are drawn with `matplotlib.figure.Figure` and the Agg canvas directly (no pyplot), so nothing changes
the process-wide matplotlib backend and nothing needs a display.
"""

import os
import textwrap

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from florence_keras.evaluation import _checks


def _save(figure, path):
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise ValueError(f"Plots are written as PNG; the path must end in '.png'. Received: path={path!r}")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=100, bbox_inches="tight")
    return path


def _image_for_display(image):
    image = _checks.to_numpy(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
        raise ValueError(f"Expected an image [H, W], [H, W, 1|3|4]. Received shape {image.shape}")
    if image.dtype != np.uint8:
        image = image.astype(np.float64)
        low, high = float(image.min()), float(image.max())
        if low < 0.0 or high > 1.0:  # e.g. [0, 255] floats or normalised inputs: rescale for display
            image = (image - low) / max(high - low, 1e-12)
    return image


def _wrap(text, width=28, lines=3):
    wrapped = textwrap.wrap(str(text), width=width) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: width - 1] + "…"
    return "\n".join(wrapped)


def plot_confusion_matrix(matrix, class_names, path, normalize=True, max_classes=30, title="Confusion matrix"):
    """Writes a confusion-matrix heat map (rows: true class, columns: predicted class).

    With more than `max_classes` classes, only the `max_classes` classes involved in the most errors (as true
    or predicted class) are drawn, in index order, and the title says so.

    Args:
        matrix: int `[C, C]` counts (`metrics.confusion_matrix`).
        class_names: list of `C` names.
        path: output `.png` path.
        normalize: divide each row by its count (rows without examples stay 0).
        max_classes: largest number of classes drawn.
        title: figure title.

    Returns:
        the path written.
    """
    matrix = _checks.as_matrix(matrix, "matrix")
    num_classes = matrix.shape[0]
    if matrix.shape != (num_classes, num_classes):
        raise ValueError(f"`matrix` must be square. Received: matrix.shape={matrix.shape}")
    if len(class_names) != num_classes:
        raise ValueError(
            f"`class_names` must have {num_classes} names. Received: len(class_names)={len(class_names)}"
        )
    max_classes = _checks.check_positive_int(max_classes, "max_classes")
    shown = np.arange(num_classes)
    if num_classes > max_classes:
        errors = matrix - np.diag(np.diag(matrix))
        involvement = errors.sum(axis=0) + errors.sum(axis=1)
        shown = np.sort(np.argsort(-involvement, kind="stable")[:max_classes])
        title = f"{title} ({max_classes} of {num_classes} classes, most errors)"
    values = matrix[np.ix_(shown, shown)].astype(np.float64)
    if normalize:
        totals = matrix[shown].sum(axis=1, keepdims=True).astype(np.float64)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    size = 3.0 + 0.35 * len(shown)
    figure = Figure(figsize=(size, size))
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    names = [_wrap(class_names[i], width=20, lines=1) for i in shown]
    axes.set_xticks(range(len(shown)), names, rotation=90, fontsize=7)
    axes.set_yticks(range(len(shown)), names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    if len(shown) <= 15:
        for row in range(len(shown)):
            for column in range(len(shown)):
                text = f"{values[row, column]:.2f}" if normalize else f"{int(values[row, column])}"
                color = "white" if values[row, column] > 0.6 * max(values.max(), 1e-12) else "black"
                axes.text(column, row, text, ha="center", va="center", fontsize=7, color=color)
    return _save(figure, path)


def _correct_matrix(correct, shape):
    if correct is None:
        return None
    correct = np.asarray(_checks.to_numpy(correct), dtype=bool)
    if correct.shape != shape:
        raise ValueError(f"`correct` must have shape {shape}. Received: correct.shape={correct.shape}")
    return correct


def plot_text_to_image_results(query_texts, retrieved_images, path, correct=None, title="Text → image"):
    """Writes a grid: one row per text query, its top-k retrieved images left to right.

    Args:
        query_texts: list of Q str.
        retrieved_images: Q lists of k images (`[H, W, 3]` uint8 or float) — e.g. `images[top_k[q]]`.
        path: output `.png` path.
        correct: optional bool `[Q, k]`; correct results get a green frame, others red.
        title: figure title.

    Returns:
        the path written.
    """
    num_queries = len(query_texts)
    if num_queries == 0 or len(retrieved_images) != num_queries:
        raise ValueError(
            "Need one row of retrieved images per query text (and at least one query). Received: "
            f"{num_queries} queries, {len(retrieved_images)} rows"
        )
    k = len(retrieved_images[0])
    if k == 0 or any(len(row) != k for row in retrieved_images):
        raise ValueError("Every query needs the same, non-zero number of retrieved images.")
    correct = _correct_matrix(correct, (num_queries, k))
    figure = Figure(figsize=(2.2 * (k + 1.4), 2.2 * num_queries))
    for q in range(num_queries):
        text_axes = figure.add_subplot(num_queries, k + 1, q * (k + 1) + 1)
        text_axes.axis("off")
        text_axes.text(0.0, 0.5, _wrap(query_texts[q]), va="center", ha="left", fontsize=9)
        for j in range(k):
            axes = figure.add_subplot(num_queries, k + 1, q * (k + 1) + j + 2)
            axes.imshow(_image_for_display(retrieved_images[q][j]))
            axes.set_xticks([])
            axes.set_yticks([])
            axes.set_title(f"#{j + 1}", fontsize=8)
            if correct is not None:
                for spine in axes.spines.values():
                    spine.set_edgecolor("green" if correct[q, j] else "red")
                    spine.set_linewidth(3)
    figure.suptitle(title)
    return _save(figure, path)


def plot_image_to_text_results(query_images, retrieved_texts, path, correct=None, title="Image → text"):
    """Writes a grid: one row per image query, its top-k retrieved captions beside it.

    Args:
        query_images: Q images.
        retrieved_texts: Q lists of k str.
        path: output `.png` path.
        correct: optional bool `[Q, k]`; correct captions are marked with a check, others with a cross.
        title: figure title.

    Returns:
        the path written.
    """
    num_queries = len(query_images)
    if num_queries == 0 or len(retrieved_texts) != num_queries:
        raise ValueError(
            "Need one list of retrieved texts per query image (and at least one query). Received: "
            f"{num_queries} queries, {len(retrieved_texts)} rows"
        )
    k = len(retrieved_texts[0])
    if k == 0 or any(len(row) != k for row in retrieved_texts):
        raise ValueError("Every query needs the same, non-zero number of retrieved texts.")
    correct = _correct_matrix(correct, (num_queries, k))
    figure = Figure(figsize=(9.0, 2.4 * num_queries))
    grid = figure.add_gridspec(num_queries, 2, width_ratios=[1, 3])
    for q in range(num_queries):
        image_axes = figure.add_subplot(grid[q, 0])
        image_axes.imshow(_image_for_display(query_images[q]))
        image_axes.axis("off")
        text_axes = figure.add_subplot(grid[q, 1])
        text_axes.axis("off")
        for j, text in enumerate(retrieved_texts[q]):
            mark = "" if correct is None else ("✓ " if correct[q, j] else "✗ ")
            color = "black" if correct is None else ("green" if correct[q, j] else "red")
            text_axes.text(
                0.0, 1.0 - (j + 0.5) / k, f"{j + 1}. {mark}{_wrap(text, 60, 2)}", va="center",
                ha="left", fontsize=8, color=color,
            )
    figure.suptitle(title)
    return _save(figure, path)


def plot_accuracy_vs_shots(results, path, title="Few-shot accuracy", label=None):
    """Writes accuracy (%) against shots per class with 95% interval error bars.

    Args:
        results: list of dicts with `"k_shot"`, `"mean_accuracy"` and `"ci95"` (as from
            `few_shot.few_shot_sweep`), or a dict `{series_label: such a list}` to draw several lines.
        path: output `.png` path.
        title: figure title.
        label: legend label for a single series.

    Returns:
        the path written.
    """
    series = results if isinstance(results, dict) else {label or "linear adapter": results}
    if not series or any(not rows for rows in series.values()):
        raise ValueError("`results` must hold at least one result per series.")
    figure = Figure(figsize=(5.5, 4.0))
    axes = figure.add_subplot(1, 1, 1)
    axes.set_xscale("log")
    all_shots = set()
    for name, rows in series.items():
        rows = sorted(rows, key=lambda row: row["k_shot"])
        shots = [row["k_shot"] for row in rows]
        means = [100.0 * row["mean_accuracy"] for row in rows]
        errors = [100.0 * row["ci95"] for row in rows]
        axes.errorbar(shots, means, yerr=errors, marker="o", capsize=4, label=str(name))
        all_shots.update(shots)
    axes.set_xticks(sorted(all_shots), [str(s) for s in sorted(all_shots)])
    axes.minorticks_off()
    axes.set_xlabel("shots per class (K)")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    return _save(figure, path)

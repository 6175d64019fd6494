"""COCO-style detection scores: a detector's boxes on a COCO instances file, scored by pycocotools' COCOeval."""

import contextlib
import io
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

# pycocotools' `COCOeval.stats`, in its order, under their usual names.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def read_rgb(path):
    """The image file as uint8 (H, W, 3), decoded as the training pipeline decodes it."""
    from florence_keras.data.detection_dataset import decode_rgb

    return np.asarray(decode_rgb(path))


def detect_records(detector, records, batch_size=32, progress=True):
    """Runs `detector.predict` on every image of `load_coco_detection`'s records.

    Images of the same size go through in batches; detections are labelled with category ids of the
    records' JSON by class name (`records["class_names"]` ↔ `records["category_ids"]`).

    Returns:
        `(results, per_image)`: COCO results (`image_id`, `category_id`, `bbox` [x, y, w, h], `score`) for the
        names the JSON knows, and per image the detector's arrays (`boxes`, `confidence`, `labels`).
    """
    id_of_name = dict(zip(records["class_names"], records["category_ids"]))
    unknown = [name for name in detector.class_names if name not in id_of_name]
    if len(unknown) == len(detector.class_names):
        raise ValueError(f"None of the detector's classes {detector.class_names} is a category of "
                         f"{records.get('json_path')} ({records['class_names']}).")
    label_ids = [id_of_name.get(name) for name in detector.class_names]
    count = len(records["paths"])
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=count, desc="detecting", unit="img")
    results, per_image = [], [None] * count
    pending = {}

    def flush(size):
        indices, images = zip(*pending.pop(size))
        out = detector.predict(np.stack(images), batch_size=batch_size)
        for row, index in enumerate(indices):
            n = int(out["num_detections"][row])
            kept = {key: np.asarray(out[key][row][:n]) for key in ("boxes", "confidence", "labels")}
            per_image[index] = kept
            for box, score, label in zip(kept["boxes"], kept["confidence"], kept["labels"]):
                category = label_ids[int(label)]
                if category is None:
                    continue
                x1, y1, x2, y2 = (float(v) for v in box)
                results.append({"image_id": records["image_ids"][index], "category_id": int(category),
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
        if bar is not None:
            bar.update(len(indices))

    for index, path in enumerate(records["paths"]):
        image = read_rgb(path)
        pending.setdefault(image.shape[:2], []).append((index, image))
        if len(pending[image.shape[:2]]) >= batch_size:
            flush(image.shape[:2])
    for size in list(pending):
        flush(size)
    if bar is not None:
        bar.close()
    return results, per_image


def coco_detection_metrics(json_path, results, image_ids=None, category_ids=None):
    """pycocotools' COCOeval (bbox) of `results` against the instances file: the 12 stats by name, in [0, 1].

    Args:
        json_path: the ground-truth COCO instances JSON.
        results: COCO results dicts (may be empty: every stat is then 0).
        image_ids: optional list, evaluate these images only (default: all of the JSON).
        category_ids: optional list, evaluate these categories only (e.g. the unseen ones of zero-shot).

    Returns:
        dict `STAT_NAMES` -> float (pycocotools' −1 for "no ground truth of this size" is kept as −1).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(os.fspath(json_path))
    if not results:
        return {name: 0.0 for name in STAT_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        detections = ground_truth.loadRes(list(results))
    evaluator = COCOeval(ground_truth, detections, "bbox")
    if image_ids is not None:
        evaluator.params.imgIds = sorted(image_ids)
    if category_ids is not None:
        evaluator.params.catIds = sorted(category_ids)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = {name: float(value) for name, value in zip(STAT_NAMES, evaluator.stats)}
    stats["summary"] = buffer.getvalue().strip().splitlines()[-12:]
    return stats


def plot_detections(images, detections, class_names, path, ground_truth=None, columns=4, min_score=0.3,
                    title="Detections"):
    """Writes a PNG grid of images with their detections (coloured, labelled) and ground truth (white, dashed).

    Args:
        images: list of uint8 `(H, W, 3)`.
        detections: list of dicts `boxes` `xyxy`, `confidence`, `labels` per image.
        class_names: names of the labels.
        path: output `.png`.
        ground_truth: optional list of `(boxes xyxy, labels)` per image.
        columns: images per row.
        min_score: detections below are not drawn.
        title: figure title.
    """
    if not str(path).lower().endswith(".png"):
        raise ValueError(f"The plot is a PNG; the path must end in '.png'. Received: path={path!r}")
    count = len(images)
    rows = max(1, -(-count // columns))
    figure = Figure(figsize=(3 * columns, 3 * rows + 0.4))
    FigureCanvasAgg(figure)
    colours = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:cyan", "tab:olive",
               "tab:pink", "tab:brown", "tab:gray")
    for index in range(rows * columns):
        axis = figure.add_subplot(rows, columns, index + 1)
        axis.axis("off")
        if index >= count:
            continue
        axis.imshow(images[index])
        if ground_truth is not None:
            for box, _ in zip(*ground_truth[index]):
                axis.add_patch(Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False,
                                         edgecolor="white", linestyle="--", linewidth=1))
        found = detections[index]
        for box, score, label in zip(found["boxes"], found["confidence"], found["labels"]):
            if score < min_score:
                continue
            colour = colours[int(label) % len(colours)]
            axis.add_patch(Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False,
                                     edgecolor=colour, linewidth=1.5))
            axis.text(box[0], box[1], f"{class_names[int(label)]} {score:.2f}", color="white", fontsize=7,
                      va="bottom", bbox={"facecolor": colour, "alpha": 0.7, "pad": 1, "linewidth": 0})
    figure.suptitle(title)
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    figure.savefig(os.fspath(path), format="png", dpi=100, bbox_inches="tight")
    return os.fspath(path)

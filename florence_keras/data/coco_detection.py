"""Reads a COCO instances JSON into padded box arrays for detection training and evaluation."""

import json
import os

import numpy as np

from florence_keras.data.skip_counter import SkipCounter

# A box may overhang the image by this many pixels (COCO's own boxes are floats rounded outward) before it
# counts as "outside the image"; the overhang is clipped.
_EDGE_TOLERANCE = 1.0


def load_coco_detection(json_path, image_root=None, exclude_classes=(), max_boxes=None, check_files=True,
                        skip_counter=None, max_images=None):
    """Loads a COCO instances file (`images`, `annotations` with `bbox` [x, y, w, h], `categories`).

    * Classes are the categories sorted by id, numbered 0..K−1 (`category_ids[k]` maps back).
    * `iscrowd` annotations are not training targets (a crowd region is not one object); they are counted as
      skipped boxes ("crowd") and stay in the JSON for pycocotools, which ignores detections on them.
    * Bad records are skipped and counted in the `SkipCounter`: an image whose file is missing ("missing
      image", the whole image), a box with w or h <= 0 ("zero-area box"), a box outside its image by more
      than a pixel ("box outside image"), an unknown category ("unknown category"). Boxes overhanging by
      less are clipped.
    * `exclude_classes` (names): images holding any box of those classes are left out ("excluded class"),
      so the held-out classes are never learned as background (the zero-shot split).
    * Images keep at most `max_boxes` boxes (extra boxes counted as "over max_boxes").

    Args:
        json_path: path of the instances JSON.
        image_root: folder the `file_name`s are relative to; default the JSON's folder.
        exclude_classes: iterable of category names to leave out (see above).
        max_boxes: int or None; None: the largest count in the data (at least 1).
        check_files: bool, check every image file exists.
        skip_counter: a `SkipCounter` to record into (a new one by default).
        max_images: int or None, keep the first images only.

    Returns:
        dict: `paths` (list of str), `image_ids`, `heights`, `widths` (lists), `boxes` float32 `(N, M, 4)`
        `xyxy` image pixels, `classes` int32 `(N, M)`, `box_mask` float32 `(N, M)`, `class_names`,
        `category_ids`, `skip_counter`, `max_boxes` (= M), `json_path`.
    """
    with open(json_path, encoding="utf-8") as f:
        document = json.load(f)
    for key in ("images", "annotations", "categories"):
        if key not in document:
            raise ValueError(f"{json_path} is not a COCO instances file: it has no {key!r} list.")
    counter = skip_counter if skip_counter is not None else SkipCounter(name="COCO detection")
    root = image_root if image_root else os.path.dirname(os.path.abspath(json_path))
    categories = sorted(document["categories"], key=lambda c: c["id"])
    category_ids = [int(c["id"]) for c in categories]
    class_names = [str(c["name"]) for c in categories]
    index_of = {cid: k for k, cid in enumerate(category_ids)}
    unknown_excluded = sorted(set(exclude_classes) - set(class_names))
    if unknown_excluded:
        raise ValueError(f"`exclude_classes` {unknown_excluded} are not categories of {json_path} "
                         f"({class_names}).")
    excluded = {index_of[category_ids[class_names.index(name)]] for name in exclude_classes}
    by_image = {}
    for annotation in document["annotations"]:
        by_image.setdefault(annotation.get("image_id"), []).append(annotation)
    paths, image_ids, heights, widths, all_boxes, all_classes = [], [], [], [], [], []
    for image in document["images"]:
        if max_images is not None and len(paths) >= max_images:
            break
        path = os.path.join(root, image["file_name"])
        if check_files and not os.path.isfile(path):
            counter.record("missing image", path)
            continue
        height, width = float(image["height"]), float(image["width"])
        boxes, classes, skip_image = [], [], False
        for annotation in by_image.get(image["id"], []):
            source = f"{image['file_name']}#annotation {annotation.get('id')}"
            if annotation.get("iscrowd", 0):
                counter.record("crowd", source)
                continue
            category = index_of.get(annotation.get("category_id"))
            if category is None:
                counter.record("unknown category", source)
                continue
            if category in excluded:
                skip_image = True
                break
            x, y, w, h = (float(v) for v in annotation["bbox"])
            if not (w > 0 and h > 0) or not np.all(np.isfinite([x, y, w, h])):
                counter.record("zero-area box", source)
                continue
            if (x < -_EDGE_TOLERANCE or y < -_EDGE_TOLERANCE or x + w > width + _EDGE_TOLERANCE
                    or y + h > height + _EDGE_TOLERANCE):
                counter.record("box outside image", source)
                continue
            box = [max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)]
            if box[2] <= box[0] or box[3] <= box[1]:
                counter.record("zero-area box", source)
                continue
            boxes.append(box)
            classes.append(category)
        if skip_image:
            counter.record("excluded class", path)
            continue
        paths.append(path)
        image_ids.append(image["id"])
        heights.append(int(height))
        widths.append(int(width))
        all_boxes.append(boxes)
        all_classes.append(classes)
    if not paths:
        raise ValueError(f"No usable image in {json_path}; {counter.summary()}")
    largest = max([len(b) for b in all_boxes] + [1])
    max_boxes = largest if max_boxes is None else int(max_boxes)
    if max_boxes < 1:
        raise ValueError(f"`max_boxes` must be >= 1. Received: max_boxes={max_boxes}")
    count = len(paths)
    boxes_array = np.zeros((count, max_boxes, 4), np.float32)
    classes_array = np.zeros((count, max_boxes), np.int32)
    mask = np.zeros((count, max_boxes), np.float32)
    for i, (boxes, classes) in enumerate(zip(all_boxes, all_classes)):
        for extra in boxes[max_boxes:]:
            counter.record("over max_boxes", f"{paths[i]}#{extra}")
        kept = min(len(boxes), max_boxes)
        if kept:
            boxes_array[i, :kept] = boxes[:kept]
            classes_array[i, :kept] = classes[:kept]
            mask[i, :kept] = 1.0
    return {"paths": paths, "image_ids": image_ids, "heights": heights, "widths": widths, "boxes": boxes_array,
            "classes": classes_array, "box_mask": mask, "class_names": class_names, "category_ids": category_ids,
            "skip_counter": counter, "max_boxes": max_boxes, "json_path": os.fspath(json_path)}

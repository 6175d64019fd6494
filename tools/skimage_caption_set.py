r"""A small real image-caption set built from scikit-image's bundled photographs, as CSV — for checking that the
pretraining defaults learn data they were not tuned on (docs/training_science.md, issue #12 item 5).

Each of ~18 real images (astronaut, coffee, rocket, horse, a page of text, the moon, ...) and the 200 LFW faces give
many small crops; a crop's caption names what it shows ("a photo of a cup of coffee"). Train and test crops come
from disjoint parts of each image (the left 70% of its columns vs the right 30%; faces 0-159 vs 160-199), so the
test split holds unseen pixels of seen subjects.

    python tools/skimage_caption_set.py --out_dir=/tmp/skimage_set           # ~3,000 train, ~700 test crops
    python recipes/pretrain_unicl.py --train_data=/tmp/skimage_set/train.csv --data_format=csv \
        --evaluate=false --model_dir=/tmp/skimage_run
    python tools/skimage_caption_set.py --out_dir=/tmp/skimage_set --score=/tmp/skimage_run/preset

Writes `train.csv` / `test.csv` (filepath,caption), `test_labels.csv` (filepath,label) and `classes.json`.
`--score` prints zero-shot top-1 over the classes (prompts "a photo of {name}.") and image<->text R@1/5/10 on the
test split, each with chance.
"""

import argparse
import csv
import json
import os
import sys

import numpy as np

# (skimage.data loader, class name as it reads in a caption).
SOURCES = (
    ("astronaut", "an astronaut"),
    ("brick", "a brick wall"),
    ("camera", "a man with a camera"),
    ("chelsea", "a cat"),
    ("clock", "a clock"),
    ("coffee", "a cup of coffee"),
    ("coins", "old coins"),
    ("grass", "grass"),
    ("gravel", "gravel"),
    ("horse", "a horse"),
    ("hubble_deep_field", "galaxies in deep space"),
    ("immunohistochemistry", "stained tissue under a microscope"),
    ("moon", "the surface of the moon"),
    ("page", "a page of printed text"),
    ("retina", "a retina"),
    ("rocket", "a rocket on a launch pad"),
    ("stereo_motorcycle", "a motorcycle"),
    ("cell", "a cell under a microscope"),
)
FACES = "a face"
CAPTION_TEMPLATES = ("{}", "a photo of {}", "a picture of {}", "a close-up of {}", "{}, cropped", "an image of {}")
TRAIN_FRACTION = 0.7


def _rgb(image):
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.dtype != np.uint8:
        image = np.clip(np.round(255 * (image - image.min()) / max(np.ptp(image), 1e-9)), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, -1)
    return image[..., :3]


def _crops(image, count, size, rng, columns):
    """`count` random square crops (side 35-100% of the region's shorter side) of `image[:, columns]`."""
    import cv2

    region = image[:, columns[0]:columns[1]]
    height, width = region.shape[:2]
    shorter = min(height, width)
    out = []
    for _ in range(count):
        side = int(rng.uniform(0.35, 1.0) * shorter)
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        crop = region[top:top + side, left:left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out.append(cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA))
    return out


def build(out_dir, train_per_class=160, test_per_class=40, size=64, seed=0):
    """Writes the set; returns `{"train": csv, "test": csv, "test_labels": csv, "classes": [names]}`."""
    import cv2
    from skimage import data

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    rows = {"train": [], "test": []}
    classes = []

    def save(split, name, index, crop):
        path = f"images/{split}_{len(classes) - 1:02d}_{index:04d}.png"
        cv2.imwrite(os.path.join(out_dir, path), crop[:, :, ::-1])
        caption = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))].format(name)
        rows[split].append((path, caption, name))

    for loader, name in SOURCES:
        image = getattr(data, loader)()
        image = _rgb(image[0] if isinstance(image, tuple) else image)
        classes.append(name)
        cut = int(TRAIN_FRACTION * image.shape[1])
        for split, count, columns in (("train", train_per_class, (0, cut)),
                                      ("test", test_per_class, (cut, image.shape[1]))):
            for index, crop in enumerate(_crops(image, count, size, rng, columns)):
                save(split, name, index, crop)
    faces = data.lfw_subset()
    classes.append(FACES)
    for split, indices in (("train", range(0, 160)), ("test", range(160, 200))):
        for index in indices:
            crop = cv2.resize(_rgb(faces[index]), (size, size), interpolation=cv2.INTER_CUBIC)
            save(split, FACES, index, crop)
    paths = {}
    for split in ("train", "test"):
        paths[split] = os.path.join(out_dir, f"{split}.csv")
        with open(paths[split], "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(("filepath", "caption"))
            writer.writerows((path, caption) for path, caption, _ in rows[split])
    paths["test_labels"] = os.path.join(out_dir, "test_labels.csv")
    with open(paths["test_labels"], "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("filepath", "label"))
        writer.writerows((path, name) for path, _, name in rows["test"])
    paths["classes"] = classes
    with open(os.path.join(out_dir, "classes.json"), "w", encoding="utf-8") as f:
        json.dump({"classes": classes, "counts": {s: len(r) for s, r in rows.items()}}, f, indent=1)
    return paths


def score(out_dir, preset):
    """Zero-shot top-1 (with chance) and retrieval R@1/5/10 of a preset on the test split."""
    from florence_keras.evaluation import encoded_data
    from florence_keras.evaluation import retrieval
    from florence_keras.evaluation import zero_shot
    from florence_keras.models import FlorenceCLIP

    with open(os.path.join(out_dir, "classes.json"), encoding="utf-8") as f:
        classes = json.load(f)["classes"]
    clip = FlorenceCLIP.from_preset(preset)
    labelled = encoded_data.encode_labelled_images(clip, preset, os.path.join(out_dir, "test_labels.csv"), "csvlabel",
                                                   verbose=False)
    labels = np.array([classes.index(str(name)) for name in labelled["class_names"]])
    classifier = zero_shot.build_zero_shot_classifier(clip.encode_texts, classes, ("a photo of {}.", "{}."))
    zs = zero_shot.zero_shot_accuracy(labelled["features"], labels, classifier, ks=(1, 5), class_names=classes)
    captioned = encoded_data.encode_captioned_images(clip, preset, os.path.join(out_dir, "test.csv"), "csv",
                                                     verbose=False)
    texts = np.asarray(clip.encode_texts([str(c) for c in captioned["captions"]]))
    rt = retrieval.retrieval_metrics(captioned["image_features"], texts, captioned["text_to_image"])
    return {"zero_shot_top1": float(zs["top1"]), "zero_shot_top5": float(zs["top5"]),
            "chance_top1": 1.0 / len(classes), "classes": len(classes), "images": int(len(labels)),
            **{k: float(v) for k, v in rt.items() if "R@" in k}, "retrieval_images": rt["num_images"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--train_per_class", type=int, default=160)
    parser.add_argument("--test_per_class", type=int, default=40)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", default=None, help="A preset to score on the written test split.")
    args = parser.parse_args(argv)
    if args.score:
        print(json.dumps(score(args.out_dir, args.score), indent=1))
        return 0
    paths = build(args.out_dir, args.train_per_class, args.test_per_class, args.size, args.seed)
    print(json.dumps({k: v for k, v in paths.items() if k != "classes"}, indent=1), len(paths["classes"]), "classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

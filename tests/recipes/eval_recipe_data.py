"""Tiny on-disk datasets for the evaluation-recipe smoke tests (PNG files written with Pillow, no TensorFlow)."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLORS = {"red_square": (220, 30, 30), "green_square": (30, 200, 40), "blue_square": (30, 40, 220)}


def _image(rng, color, index):
    noise = rng.normal(0, 25, size=(20 + index, 24 + index % 3, 3))
    return Image.fromarray(np.clip(np.array(color)[None, None, :] + noise, 0, 255).astype(np.uint8))


def write_image_folder(root, per_class, seed=0, bad_file=False):
    """`root/<class>/<i>.png` for the three colour classes; optionally one undecodable file."""
    rng = np.random.default_rng(seed)
    for name, color in COLORS.items():
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            _image(rng, color, i).save(os.path.join(root, name, f"{i}.png"))
    if bad_file:
        with open(os.path.join(root, "red_square", "broken.png"), "wb") as file:
            file.write(b"this is not an image")
    return str(root)


def write_coco_captions(root, per_class=4, seed=0):
    """A COCO captions JSON with 2 or 3 captions per image; returns (path, num_images, num_captions)."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    images, annotations = [], []
    for c, (name, color) in enumerate(COLORS.items()):
        for i in range(per_class):
            file_name = f"images/{name}_{i}.png"
            _image(rng, color, i).save(os.path.join(root, file_name))
            image_id = 100 * c + i
            images.append({"id": image_id, "file_name": file_name})
            for j in range(2 + i % 2):
                annotations.append({"id": len(annotations), "image_id": image_id,
                                    "caption": f"a {name.replace('_', ' ')}, picture {i}, caption {j}"})
    path = os.path.join(root, "captions.json")
    with open(path, "w", encoding="utf-8") as file:
        json.dump({"images": images, "annotations": annotations}, file)
    return path, len(images), len(annotations)


def run_recipe(name, *args, timeout=240):
    """Runs `recipes/<name>.py` in a subprocess (absl flags are process-global); returns its stdout."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    completed = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "recipes", f"{name}.py"), *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert completed.returncode == 0, f"{name} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-6000:]}"
    return completed.stdout

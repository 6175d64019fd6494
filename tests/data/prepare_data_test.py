"""recipes/prepare_data.py and its library, florence_keras.data.tfrecord_shards."""

import collections
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import tensorflow as tf

from florence_keras.data.image_folder_index import list_image_folder
from florence_keras.data.image_records import load_image_records
from florence_keras.data.tfrecord_example import parse_image_text_example
from florence_keras.data.tfrecord_shards import shard_path
from florence_keras.data.tfrecord_shards import write_tfrecord_shards

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RNG = np.random.default_rng(4)
SIZES = {"small.jpg": (20, 30), "wide.png": (40, 90), "tall.jpg": (100, 50), "square.png": (64, 64)}


def _input_csv(root):
    rows = []
    for name, (height, width) in SIZES.items():
        image = RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)
        assert cv2.imwrite(str(root / name), image)
        rows.append(f"{name},caption {name}")
    rows.append("absent.jpg,caption absent")
    (root / "in.csv").write_text("filepath,caption\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(root / "in.csv")


def _records(path):
    return [parse_image_text_example(record) for record in tf.data.TFRecordDataset(path)]


def test_conversion_resizes_skips_and_resumes(tmp_path):
    source = _input_csv(tmp_path)
    out = str(tmp_path / "out")
    report = write_tfrecord_shards(source, "csv", out, num_shards=2, image_size=32, prefix="t", progress=False)
    assert report["written"] == 4 and report["skipped"] == 1 and report["reasons"] == {"missing": 1}
    assert report["resumed"] == 0 and report["shards"] == [shard_path(out, "t", k, 2) for k in range(2)]
    records = list(load_image_records(out, "tfrecord"))
    by_caption = {r["texts"].numpy().decode(): r["images"].shape for r in records}
    assert set(by_caption) == {f"caption {name}" for name in SIZES}
    for name, (height, width) in SIZES.items():
        shape = by_caption[f"caption {name}"]
        if min(height, width) <= 32:
            assert shape[:2] == (height, width)
        else:
            assert min(shape[:2]) == 32 and abs(shape[0] / shape[1] - height / width) < 0.05
    raw = {r["texts"].numpy().decode(): r["data"].numpy() for p in report["shards"] for r in _records(p)}
    assert raw["caption small.jpg"] == (tmp_path / "small.jpg").read_bytes()  # small JPEGs are copied as they are

    stamps = [os.stat(p).st_mtime_ns for p in report["shards"]]
    again = write_tfrecord_shards(source, "csv", out, num_shards=2, image_size=32, prefix="t", progress=False)
    assert again["resumed"] == 2 and again["written"] == 4 and again["skipped"] == 1
    assert [os.stat(p).st_mtime_ns for p in report["shards"]] == stamps
    os.remove(report["shards"][1] + ".json")  # as if the run had died before finishing shard 1
    open(report["shards"][1] + ".tmp-999", "wb").close()
    contents = [r["texts"].numpy() for r in _records(report["shards"][1])]
    third = write_tfrecord_shards(source, "csv", out, num_shards=2, image_size=32, prefix="t", progress=False)
    assert third["resumed"] == 1 and third["written"] == 4
    assert os.stat(report["shards"][0]).st_mtime_ns == stamps[0]
    assert [r["texts"].numpy() for r in _records(report["shards"][1])] == contents
    assert not [name for name in os.listdir(out) if ".tmp-" in name]


def test_image_label_data_keeps_its_class_names(builtin, tmp_path):
    out = str(tmp_path / "classes")
    report = write_tfrecord_shards(builtin["imagefolder"]["train"], "imagefolder", out, num_shards=1,
                                   image_size=0, progress=False)
    originals = collections.Counter(name.encode() for name in list_image_folder(builtin["imagefolder"]["train"])[1])
    converted = collections.Counter(r["class_names"].numpy() for r in load_image_records(out, "tfrecord"))
    assert report["written"] == sum(originals.values()) and converted == originals


def test_recipe_tiny_run(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    out = tmp_path / "prepared"
    completed = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "recipes", "prepare_data.py"), "--tiny", f"--output_dir={out}",
         "--num_shards=1", "--image_size=32", "--progress=false"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "records written: 48" in completed.stdout and "examples skipped: 0" in completed.stdout
    with open(out / "data-report-task0.json") as f:
        assert json.load(f)["written"] == 48
    # Rerunning is resumable: the same library call finds both shards complete.
    resumed = write_tfrecord_shards(str(out / "builtin_source" / "train.csv"), "csv", str(out), num_shards=1,
                                    image_size=32, progress=False)
    assert resumed["resumed"] == 1 and resumed["written"] == 48
    images = [r["images"].shape for r in load_image_records(str(out), "tfrecord")]
    assert len(images) == 48 and all(shape == (32, 32, 3) for shape in images)

import collections
import csv
import json
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf
from pycocotools.coco import COCO

from florence_keras.data import labels
from florence_keras.data.builtin_dataset import write_builtin_dataset
from florence_keras.data.image_text_dataset import load_image_text_dataset
from florence_keras.data.scene_generator import SceneGenerator
from florence_keras.data.skip_counter import SkipCounter

SETTINGS = {"num_train": 40, "num_heldout": 12, "image_size": 48, "seed": 3}  # as conftest.BUILTIN_SETTINGS


@pytest.fixture(scope="module")
def generator():
    return SceneGenerator(image_size=SETTINGS["image_size"], seed=SETTINGS["seed"])


def _reference(builtin, split, count):
    """(caption, decoded JPEG) of every image, straight from the generator and the written JPEG files."""
    gen = SceneGenerator(image_size=SETTINGS["image_size"], seed=SETTINGS["seed"])
    out = []
    for i in range(count):
        with open(os.path.join(builtin["root"], "images", split, f"{split}_{i:06d}.jpg"), "rb") as f:
            out.append((gen.scene(i, split).caption, tf.io.decode_jpeg(f.read()).numpy()))
    return out


@pytest.mark.parametrize("data_format", ["csv", "coco", "wds", "tfrecord"])
def test_every_caption_format_reads_back_identically(builtin, data_format):
    """One pipeline per format over both splits (a list of paths): images, texts and labels as written."""
    reference = _reference(builtin, "train", SETTINGS["num_train"]) + _reference(
        builtin, "heldout", SETTINGS["num_heldout"])
    paths = builtin[data_format]["train"], builtin[data_format]["heldout"]
    paths = [p for group in paths for p in (group if isinstance(group, list) else [group])]
    counter = SkipCounter()
    examples = list(load_image_text_dataset(paths, data_format, training=False, skip_counter=counter,
                                            keep_sources=True))
    assert counter.count == 0 and len(examples) == len(reference)
    for (caption, image), example in zip(reference, examples):
        assert example["texts"].numpy().decode() == caption
        np.testing.assert_array_equal(example["images"].numpy(), image)
    texts = [caption for caption, _ in reference]
    np.testing.assert_array_equal([e["labels"].numpy() for e in examples], labels.text_label(texts).numpy())
    if data_format == "wds":  # identical captions share a label across shards
        by_text = collections.defaultdict(set)
        for example in examples:
            shard = example["sources"].numpy().decode().rsplit(":", 1)[0]
            by_text[example["texts"].numpy()].add((shard, int(example["labels"].numpy())))
        assert all(len({label for _, label in found}) == 1 for found in by_text.values())
        assert any(len({shard for shard, _ in found}) >= 2 for found in by_text.values())


@pytest.mark.parametrize("data_format", ["imagefolder", "csvlabel"])
def test_image_label_formats_read_back_with_class_labels(builtin, generator, data_format):
    expected = collections.Counter(generator.scene(i).primary.shape for i in range(SETTINGS["num_train"]))
    dataset = load_image_text_dataset(builtin[data_format]["train"], data_format, image_size=32, training=False)
    seen = collections.Counter()
    for example in dataset:
        text = example["texts"].numpy().decode()
        shape = text.rstrip(".").split()[-1]  # every default template ends with the class name
        seen[shape] += 1
        assert example["labels"].numpy() == labels.class_label(shape).numpy()
        assert example["images"].shape == (32, 32, 3)
    assert seen == expected


def test_jpegs_show_their_scenes(builtin, generator):
    for (_, image), i in zip(_reference(builtin, "train", 5), range(5)):
        same = np.abs(image.astype(int) - generator.scene(i).image.astype(int)).mean()
        other = np.abs(image.astype(int) - generator.scene(i + 1).image.astype(int)).mean()
        assert same < 8.0 and other > 3 * same  # JPEG quality 95 of noisy pixels


def test_instances_depth_vqa_and_clips(builtin, generator):
    coco = COCO(builtin["instances"]["train"])
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == sorted(generator.shapes)
    for i in range(6):
        scene = generator.scene(i)
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[i + 1]))
        assert len(annotations) == len(scene.objects)
        for obj, mask, ann in zip(scene.objects, scene.masks, annotations):
            np.testing.assert_array_equal(ann["bbox"], scene.boxes[scene.objects.index(obj)])
            np.testing.assert_array_equal(coco.annToMask(ann), mask.astype(np.uint8))
            assert coco.loadCats(ann["category_id"])[0]["name"] == obj.shape
            assert ann["attributes"]["colour"] == obj.colour and ann["area"] == mask.sum()
    with open(builtin["depth"]["train"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == SETTINGS["num_train"]
    depth = cv2.imread(os.path.join(builtin["root"], rows[2]["depth"]), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16
    np.testing.assert_array_equal(depth, generator.scene(2).depth_png16())
    with open(builtin["vqa"]["train"]["questions"]) as f:
        questions = json.load(f)
    with open(builtin["vqa"]["train"]["annotations"]) as f:
        answers = {a["question_id"]: a for a in json.load(f)["annotations"]}
    first = [q for q in questions["questions"] if q["image_id"] == 1]
    assert [q["question"] for q in first] == [qa["question"] for qa in generator.scene(0).questions()]
    for q, qa in zip(first, generator.scene(0).questions()):
        answer = answers[q["question_id"]]
        assert answer["multiple_choice_answer"] == qa["answer"] and len(answer["answers"]) == 10
    with open(builtin["video"]["train"], newline="") as f:
        clips = list(csv.DictReader(f))
    assert len(clips) == 3
    capture = cv2.VideoCapture(os.path.join(builtin["root"], clips[0]["path"]))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 6 and frames[0].shape == (48, 48, 3)
    assert clips[0]["label"] == generator.clip(0, 6).label
    with open(builtin["info"]) as f:
        info = json.load(f)
    assert info["splits"]["train"]["images"] == 40 and len(info["heldout_combinations"]) == 8


def test_writing_is_deterministic(tmp_path):
    first = write_builtin_dataset(tmp_path / "a", 6, 2, image_size=32, formats=("csv", "wds", "tfrecord"))
    second = write_builtin_dataset(tmp_path / "b", 6, 2, image_size=32, formats=("csv", "wds", "tfrecord"))
    for key in ("csv", "wds", "tfrecord"):
        a, b = first[key]["train"], second[key]["train"]
        for path_a, path_b in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
            with open(path_a, "rb") as f, open(path_b, "rb") as g:
                assert f.read() == g.read()
    with pytest.raises(ValueError, match="format"):
        write_builtin_dataset(tmp_path / "c", 2, 0, formats=("parquet",))


def test_test_split_attributes_and_several_captions_per_image(tmp_path):
    from florence_keras.data import scene as scene_lib
    from florence_keras.data.builtin_dataset import MULTI_CAPTION_STYLES

    paths = write_builtin_dataset(tmp_path, 5, 3, image_size=48, seed=4, num_test=7,
                                  formats=("csv", "attributes", "captions_multi"))
    gen = SceneGenerator(image_size=48, seed=4)
    for split, count in (("train", 5), ("heldout", 3), ("test", 7)):
        with open(paths["attributes"][split], newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == count
        coco = COCO(paths["captions_multi"][split])
        for index, row in enumerate(rows):
            scene = gen.scene(index, split)
            primary = scene.primary
            assert row["filepath"] == f"images/{split}/{split}_{index:06d}.jpg"
            assert (row["shape"], row["colour"], row["size"], int(row["count"]), row["caption_style"]) == (
                primary.shape, primary.colour, primary.size, len(scene.objects), scene.caption_style)
            expected_place = ("left", "middle", "right")[min(2, int(3 * primary.center[0] / 48))]
            assert row["place"] == expected_place == scene_lib.horizontal_place(primary, 48)
            captions = [a["caption"] for a in coco.imgToAnns[index + 1]]
            assert captions == list(dict.fromkeys(scene.captions[s] for s in MULTI_CAPTION_STYLES))
            assert coco.imgs[index + 1]["file_name"] == row["filepath"]
        assert len(coco.getAnnIds()) >= 2 * count  # several captions per image


def test_ensure_builtin_dataset_reuses_matching_settings_only(tmp_path):
    from florence_keras.data.builtin_dataset import ENSURED_FORMATS
    from florence_keras.data.builtin_dataset import ensure_builtin_dataset

    first = ensure_builtin_dataset(str(tmp_path), 4, 2, 32, 0, num_test=3)
    assert set(ENSURED_FORMATS) <= set(first) and "test" in first["attributes"]
    stamp = os.path.getmtime(first["csv"]["train"])
    assert ensure_builtin_dataset(str(tmp_path), 4, 2, 32, 0, num_test=3) == first
    assert os.path.getmtime(first["csv"]["train"]) == stamp  # reused, not rewritten
    other = ensure_builtin_dataset(str(tmp_path), 4, 2, 32, 0, num_test=3,
                                   caption_style_probabilities={"class": 1.0})
    with open(other["csv"]["train"], newline="") as f:
        captions = [row["caption"] for row in csv.DictReader(f)]
    gen = SceneGenerator(image_size=32, seed=0)
    assert captions == [f"a {gen.scene(i).primary.shape}" for i in range(4)]

"""The built-in scenes as a VQA v2 set (questions + annotations JSON per split, written once and reused)."""

import json
import os

import numpy as np

from florence_keras.data import scene as scene_lib
from florence_keras.data.builtin_dataset import write_builtin_dataset

# The built-in VQA files name their images in their own "images" list (relative to the data folder).
BUILTIN_IMAGE_TEMPLATE = "{file_name}"


def ensure_builtin_vqa_data(directory, num_train, num_heldout, image_size=64, seed=0):
    """Writes the built-in scenes' `vqa` format once; returns the VQA v2 files of each split.

    The held-out split's scenes are never in the training split (other seeds; their primary objects have held-out
    shape-colour combinations). Each question has 10 identical human answers (the scene's ground truth).

    Returns:
        dict: `"train"` / `"heldout"`: `{"questions", "annotations"}` paths; `"image_dir"`: the folder the
        `{file_name}` template is relative to; `"image_template"`.
    """
    settings = {"num_train": num_train, "num_heldout": num_heldout, "image_size": image_size, "seed": seed,
                "formats": ["vqa"]}
    marker = os.path.join(directory, "florence_builtin_vqa_settings.json")
    paths = {split: {"questions": os.path.join(directory, "vqa", f"questions_{split}.json"),
                     "annotations": os.path.join(directory, "vqa", f"annotations_{split}.json")}
             for split in ("train", "heldout")}
    paths.update(image_dir=directory, image_template=BUILTIN_IMAGE_TEMPLATE)
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            if json.load(f) == settings:
                return paths
        os.remove(marker)  # other settings: rewritten below, marked complete only at the end
    write_builtin_dataset(directory, num_train, num_heldout, image_size=image_size, seed=seed, formats=("vqa",),
                          verbose=True)
    with open(marker, "w", encoding="utf-8") as f:  # written last: marks a complete dataset
        json.dump(settings, f)
    return paths


def builtin_scene(generator, image_id, split="train"):
    """The scene of a built-in VQA record: `write_builtin_dataset` numbers images by scene index + 1."""
    return generator.scene(int(image_id) - 1, split)


_ROWS, _COLUMNS = ("top", "", "bottom"), ("left", "", "right")
PLACES = ("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right")


def place_name(obj, image_size):
    """The ninth of the image holding the object's centre: `"top left"`, `"top"`, ..., `"center"`, ...,
    `"bottom right"` (`PLACES`)."""
    row = min(2, int(obj.center[1] / image_size * 3))
    column = min(2, int(obj.center[0] / image_size * 3))
    return " ".join(word for word in (_ROWS[row], _COLUMNS[column]) if word) or "center"


def add_place_questions(records, generator, split="train"):
    """Training-only questions "where is the X?" for every object whose name is unique in its scene, answered by
    `place_name` (ten identical answers, answer type "other", question type "where is the").

    A per-object target that ties each named object to where it is (with `FlorenceVQA(grounding_weight=...)`,
    docs/vqa.md, session 24). Added to the training records only: the held-out split is unchanged.

    Args:
        records: the built-in split's VQA records (`read_vqa_v2`: `image_id`, `image_path`, ...).
        generator: the `SceneGenerator` that drew them; split: their split.

    Returns:
        `(records + the new records, the number added)`; new question ids follow the largest given one.
    """
    def make(image_id, scene, objects):
        return [(f"where is the {obj.name}?", place_name(obj, generator.image_size), "other", "where is the")
                for obj in objects]

    return _add_object_questions(records, generator, split, make)


def add_occlusion_questions(records, generator, split="train"):
    """Training-only questions "is the X partly hidden?" for every object whose name is unique in its scene,
    answered "yes" where nearer objects hide at least `scene.MIN_OCCLUDED_FRACTION` of it (`scene.partly_hidden`,
    the threshold of the "in front" questions), else "no" (answer type "yes/no", question type "is the X partly").

    "Is the X in front of the Y?" is asked of two objects one of which hides the other, so it is answered by
    which of the two is partly hidden: a per-object target for the comparison (docs/vqa.md, session 25). Added to
    the training records only.

    Args and returns: as `add_place_questions`.
    """
    def make(image_id, scene, objects):
        hidden = dict(zip(map(id, scene.objects), scene_lib.partly_hidden(scene.objects, generator.image_size)))
        return [(f"is the {obj.name} partly hidden?", "yes" if hidden[id(obj)] else "no", "yes/no",
                 "is the X partly") for obj in objects]

    return _add_object_questions(records, generator, split, make)


def add_front_pair_questions(records, generator, split="train"):
    """Training-only "is the X in front of the Y?" for every ordered pair of uniquely named objects of which the
    nearer hides at least `scene.MIN_OCCLUDED_FRACTION` of the other (`scene.occlusion_visible`, the rule of the
    scenes' own question), both orders, leaving out the question a record already asks of its image. Answered by
    the depths (answer type "yes/no", question type "is the", as the scenes' own).

    The scenes ask this of their two nearest objects only (~1 in 3 scenes); every occluding pair, both ways, gives
    ~3.5× the questions and pairs the nearest object is not part of (docs/vqa.md, session 25). Added to the
    training records only.

    Args and returns: as `add_place_questions`.
    """
    asked = {(r["image_id"], r["question"]) for r in records}

    def make(image_id, scene, objects):
        pairs = []
        for first in objects:
            for second in objects:
                near, far = (first, second) if first.depth < second.depth else (second, first)
                if first is second or not scene_lib.occlusion_visible(near, far, generator.image_size):
                    continue
                question = f"is the {first.name} in front of the {second.name}?"
                if (image_id, question) not in asked:
                    pairs.append((question, "yes" if first is near else "no", "yes/no", "is the"))
        return pairs

    return _add_object_questions(records, generator, split, make)


def _add_object_questions(records, generator, split, make):
    """Adds `make(image_id, scene, objects)`'s `(question, answer, answer_type, question_type)` tuples for each
    image of `records` (`objects`: those whose name is unique in the scene), ten identical answers each."""
    first = {}
    for record in records:
        first.setdefault(record["image_id"], record)
    next_id = max((int(r["question_id"]) for r in records), default=0) + 1
    added = []
    for image_id, record in first.items():
        scene = builtin_scene(generator, image_id, split)
        names = [obj.name for obj in scene.objects]
        unique = [obj for obj in scene.objects if names.count(obj.name) == 1]
        for question, answer, answer_type, question_type in make(image_id, scene, unique):
            added.append({"question_id": next_id, "image_id": image_id, "question": question,
                          "answers": [answer] * 10, "answer_type": answer_type, "question_type": question_type,
                          "image_path": record["image_path"]})
            next_id += 1
    return list(records) + added, len(added)



def builtin_occlusion_scenes(generator, count, image_size=None, split="train"):
    """The first `count` scenes of a built-in split as images and per-pixel occlusion codes
    (`scene.dense_label_map`'s first channel: `DENSE_BACKGROUND`, `DENSE_IN_FULL_VIEW`, `DENSE_PARTLY_HIDDEN`):
    what `fit_dense_label_decoder` fits `FlorenceVQA(dense_label_classes=3)`'s decoder on. The first scenes are
    the VQA training split's own images (`builtin_scene`: image id = index + 1); the ones after it are more
    training scenes of the same draw, never held-out ones.

    Args:
        generator: a `SceneGenerator`; count: int > 0; split: the split to draw from.
        image_size: the size to return (default the generator's): images resized bilinearly (antialiased), maps
            nearest-neighbour (pixel centres: no class mixed).

    Returns:
        `(images uint8 (count, S, S, 3), maps uint8 (count, S, S))`.
    """
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"`count` must be a positive int. Received: {count!r}")
    size = generator.image_size
    image_size = size if image_size is None else image_size
    images = np.zeros((count, size, size, 3), np.uint8)
    maps = np.zeros((count, size, size), np.uint8)
    for index in range(count):
        scene = generator.scene(index, split)
        images[index] = scene.image
        maps[index] = scene_lib.dense_label_map(scene.objects, size, generator.shapes, generator.colours)[..., 0]
    if image_size != size:
        import tensorflow as tf

        images = np.asarray(tf.cast(tf.round(tf.clip_by_value(tf.image.resize(
            images, (image_size, image_size), antialias=True), 0, 255)), tf.uint8))
        rows = ((np.arange(image_size) + 0.5) * size / image_size).astype(int)
        maps = maps[:, rows][:, :, rows]
    return images, maps

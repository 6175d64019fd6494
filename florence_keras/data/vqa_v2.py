"""VQA v2 data: the questions + annotations JSON files, their images, bad records skipped and counted.

Layout (the official one, visualqa.org): a questions file `{"data_subtype": "val2014", "questions": [{"image_id",
"question", "question_id"}, ...]}` and an annotations file `{"annotations": [{"question_id", "image_id",
"answers": [{"answer", ...} x 10], "answer_type", "question_type", "multiple_choice_answer"}, ...]}`. The
annotations are optional (test-dev has none: questions only, for prediction).

Image files: `image_dir / image_template.format(split=..., image_id=..., file_name=...)`. The default template is
COCO's `COCO_{split}_{image_id:012d}.jpg`, with `split` the questions file's `data_subtype` (or `split=`).
`{file_name}` is the `file_name` of the image in the questions file's own `"images"` list (COCO-style; the
built-in scenes write one), so `--image_template={file_name}` reads such sets.

Skipped and counted (`SkipCounter`, reason -> count, first sources), never fatal: a question without an
annotation when annotations are given (`no_annotation`), a record with a missing/empty field or an answers list
without a string answer (`bad_record`), an image not found (`missing`) or not a regular file, and an image that
does not decode (the training pipeline's reasons: `empty`, `not_an_image`, `truncated`, `corrupt`, `too_large`).
Each image is decoded once however many questions it has.
"""

import json
import os

import numpy as np
import tensorflow as tf

from florence_keras.data import image_decoding
from florence_keras.data import regular_files
from florence_keras.data.skip_counter import SkipCounter

DEFAULT_IMAGE_TEMPLATE = "COCO_{split}_{image_id:012d}.jpg"


def _load_json(path, what):
    try:
        with tf.io.gfile.GFile(os.fspath(path), "r") as f:
            return json.load(f)
    except tf.errors.NotFoundError:
        raise ValueError(f"The VQA {what} file {path} does not exist.") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"The VQA {what} file {path} is not valid JSON: {error}") from None


def _answers_of(annotation):
    answers = annotation.get("answers")
    if not isinstance(answers, list) or not answers:
        return None
    out = []
    for answer in answers:
        text = answer.get("answer") if isinstance(answer, dict) else answer
        if not isinstance(text, str):
            return None
        out.append(text)
    return out


def read_vqa_v2(questions_path, annotations_path=None, image_dir=".", image_template=DEFAULT_IMAGE_TEMPLATE,
                split=None, skip_counter=None, max_questions=None):
    """Joins the questions with their annotations and image paths (images are not read here).

    Args:
        questions_path: the questions JSON.
        annotations_path: the annotations JSON, or None (questions only).
        image_dir: folder of the images (the template is relative to it).
        image_template: str.format template with `{split}`, `{image_id}`, `{file_name}`.
        split: the `{split}` value; default the questions file's `data_subtype`.
        skip_counter: a `SkipCounter` (default: a new one, returned).
        max_questions: optional int, keep the first N good questions.

    Returns:
        dict: `records` (list of dicts `question_id`, `image_id`, `question`, `image_path`, and with annotations
        `answers` (list of str), `answer_type`, `question_type`), `annotations` (the raw annotation dicts of the
        kept questions, for the evaluator; None without annotations), `skip_counter`.
    """
    counter = SkipCounter(name="VQA v2 records") if skip_counter is None else skip_counter
    questions_doc = _load_json(questions_path, "questions")
    if not isinstance(questions_doc, dict) or not isinstance(questions_doc.get("questions"), list):
        raise ValueError(f"{questions_path} is not a VQA questions file: it needs a top-level 'questions' list.")
    split = split if split is not None else questions_doc.get("data_subtype", "")
    file_names = {}
    for image in questions_doc.get("images", []) or []:
        if isinstance(image, dict) and "id" in image and isinstance(image.get("file_name"), str):
            file_names[image["id"]] = image["file_name"]
    by_question = None
    if annotations_path is not None:
        annotations_doc = _load_json(annotations_path, "annotations")
        if not isinstance(annotations_doc, dict) or not isinstance(annotations_doc.get("annotations"), list):
            raise ValueError(f"{annotations_path} is not a VQA annotations file: it needs an 'annotations' list.")
        by_question = {}
        for annotation in annotations_doc["annotations"]:
            if isinstance(annotation, dict) and "question_id" in annotation:
                by_question[annotation["question_id"]] = annotation
    records, kept_annotations = [], []
    for question in questions_doc["questions"]:
        if max_questions is not None and len(records) >= max_questions:
            break
        source = f"{questions_path}: {json.dumps(question)[:120]}"
        if not isinstance(question, dict) or not isinstance(question.get("question"), str) \
                or not question["question"].strip() or "question_id" not in question or "image_id" not in question:
            counter.record("bad_record", source)
            continue
        record = {"question_id": question["question_id"], "image_id": question["image_id"],
                  "question": question["question"]}
        if by_question is not None:
            annotation = by_question.get(question["question_id"])
            if annotation is None:
                counter.record("no_annotation", source)
                continue
            answers = _answers_of(annotation)
            if answers is None:
                counter.record("bad_record", f"{annotations_path}: question_id {question['question_id']}")
                continue
            record.update(answers=answers, answer_type=annotation.get("answer_type", "unknown"),
                          question_type=annotation.get("question_type", "unknown"))
        try:
            name = image_template.format(split=split, image_id=question["image_id"],
                                         file_name=file_names.get(question["image_id"], ""))
        except (ValueError, TypeError, KeyError, IndexError) as error:
            raise ValueError(f"`image_template` {image_template!r} cannot be filled ({error}); it may use "
                             "{split}, {image_id} and {file_name}.") from None
        if not name or name.endswith(("/", os.sep)):
            counter.record("missing", f"{source} (no file name)")
            continue
        record["image_path"] = os.path.join(os.fspath(image_dir), name)
        records.append(record)
        if by_question is not None:
            kept_annotations.append(by_question[question["question_id"]])
    if counter.count:
        counter.log_summary()
    return {"records": records, "annotations": kept_annotations if by_question is not None else None,
            "skip_counter": counter}


def _decode(path, max_pixels):
    if regular_files.is_special_file(path):
        return None, regular_files.NOT_A_FILE
    if not tf.io.gfile.exists(path):
        return None, "missing"
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    try:
        image, reason = image_decoding.decode_image_checked(tf.constant(data), max_pixels=max_pixels)
    except tf.errors.InvalidArgumentError:
        return None, image_decoding.classify_undecodable(data)
    if int(reason) != image_decoding.OK:
        return None, image_decoding.REASON_NAMES[int(reason)]
    return image.numpy(), None


def resize_image(image, size):
    """uint8 `(H, W, 3)` -> uint8 `(size, size, 3)`: whole-image bilinear, antialiased (what `FlorenceVQA` serves)."""
    if image.shape[:2] == (size, size):
        return image
    resized = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()


def load_vqa_images(records, image_size, skip_counter=None, max_pixels=image_decoding.DEFAULT_MAX_PIXELS,
                    progress=True):
    """Decodes each distinct image of `records` once, at `image_size`; drops the records whose image is bad.

    Returns:
        dict: `images` uint8 `(M, S, S, 3)` (distinct images), `image_index` int32 `(N,)` (row of each kept
        record's image), `records` (the kept records, in order), `skip_counter`.

    Raises:
        ValueError: no record has a readable image (the message gives the skip summary).
    """
    counter = SkipCounter(name="VQA v2 images") if skip_counter is None else skip_counter
    rows, images, bad = {}, [], {}
    kept, index = [], []
    paths = list(dict.fromkeys(record["image_path"] for record in records))
    iterator = paths
    if progress and len(paths) > 200:
        from tqdm import tqdm  # local: only for the progress bar

        iterator = tqdm(paths, desc="VQA images", unit="img")
    for path in iterator:
        image, reason = _decode(path, max_pixels)
        if image is None:
            bad[path] = reason
            continue
        rows[path] = len(images)
        images.append(resize_image(image, image_size))
    for record in records:
        path = record["image_path"]
        if path in bad:
            counter.record(bad[path], f"{path} (question_id {record['question_id']})")
            continue
        kept.append(record)
        index.append(rows[path])
    if counter.count:
        counter.log_summary()
    if not kept:
        raise ValueError(f"No VQA record has a readable image. {counter.summary()}")
    return {"images": np.stack(images), "image_index": np.asarray(index, np.int32), "records": kept,
            "skip_counter": counter}

"""What the video recipes share: loading / inflating the video Task and building its training batches."""

import json
import os

import tensorflow as tf

from florence_keras.data.labels import text_label
from florence_keras.data.skip_counter import SkipCounter
from florence_keras.data.video_dataset import flip_label_map
from florence_keras.data.video_dataset import video_dataset
from florence_keras.data.video_index import list_video_captions
from florence_keras.data.video_index import list_video_folder
from florence_keras.models.florence_video_classifier import FlorenceVideoClassifier


def is_video_preset(preset):
    """Whether `preset` is a directory holding a saved `FlorenceVideoClassifier`."""
    task_file = os.path.join(str(preset), "task.json")
    if not os.path.isfile(task_file):
        return False
    with open(task_file, encoding="utf-8") as f:
        return json.load(f).get("class_name") == "FlorenceVideoClassifier"


def load_video_task(preset, class_names, objective="classify", num_frames=8, image_size=64, temporal_kernel=3,
                    temporal_stride=2, temporal_window=2, inflation="center", label_smoothing=0.1, motion_radius=2):
    """A `FlorenceVideoClassifier`: loaded from a video preset, else inflated from an image preset.

    A video preset keeps its weights (and its `motion_radius`); its head is rebuilt when `class_names` differ
    (unicl fine-tunes and classification runs on other classes). `motion_radius` is for an inflated image preset
    (`FlorenceVideoClassifier`'s motion features; 0 = none).
    """
    if is_video_preset(preset):
        task = FlorenceVideoClassifier.from_preset(preset)
        if list(task.class_names) == list(class_names) and task.objective == objective and (
                task.num_frames, task.image_size) == (num_frames, image_size):
            return task
        encoder = task.backbone.image_encoder
        backbone = task.backbone
        if (task.num_frames, task.image_size) != (num_frames, image_size):
            config = dict(encoder.get_config(), video_shape=(num_frames, image_size, image_size, 3))
            resized = type(encoder).from_config(config)
            resized.set_weights(encoder.get_weights())
            backbone = type(backbone)(resized, backbone.text_encoder, backbone.projection_dim,
                                      logit_scale_init=backbone.logit_scale_init,
                                      logit_scale_max=backbone.logit_scale_max, dtype=backbone.dtype_policy)
            for name in ("image_projection", "text_projection", "logit_scale_layer"):
                getattr(backbone, name).set_weights(getattr(task.backbone, name).get_weights())
        new = FlorenceVideoClassifier(backbone, task.preprocessor, class_names=class_names,
                                      label_smoothing=label_smoothing, objective=objective,
                                      motion_radius=task.motion_radius)
        if list(task.class_names) == list(class_names):
            new.head.set_weights(task.head.get_weights())
        return new
    return FlorenceVideoClassifier.from_image_preset(
        preset, class_names=class_names, num_frames=num_frames, image_size=image_size,
        temporal_kernel=temporal_kernel, temporal_stride=temporal_stride, window=temporal_window,
        inflation=inflation, label_smoothing=label_smoothing, objective=objective, motion_radius=motion_radius)


def read_video_data(path):
    """`{"paths", "labels", "captions", "class_names"}` of a class-per-folder directory or a caption CSV."""
    if os.path.isdir(path):
        paths, labels, class_names = list_video_folder(path)
        return {"paths": paths, "labels": labels, "captions": None, "class_names": class_names}
    paths, captions = list_video_captions(path)
    return {"paths": paths, "labels": None, "captions": captions, "class_names": None}


def video_training_data(path, objective):
    """The training clips of `path` and a `make_dataset(task, batch_size, seed, ...)` for the trainer.

    `classify` reads a class-per-folder directory; `unicl` a `filepath,caption` CSV (a class-per-folder
    directory also works: the caption is the class name with `_` read as a space).
    """
    data = read_video_data(path)
    if objective == "classify" and data["labels"] is None:
        raise ValueError(f"objective='classify' needs a class-per-folder directory. Received: {path!r}")
    if objective == "unicl" and data["captions"] is None:
        data["captions"] = [data["class_names"][i].replace("_", " ") for i in data["labels"]]
        data["labels"] = None
        data["class_names"] = None
    if data["class_names"] is None:  # unicl: the head is unused, two placeholder classes
        data["class_names"] = ["class_0", "class_1"]
    skip_counter = SkipCounter(name="video clips")
    data["skip_counter"] = skip_counter
    labelled = data["labels"] is not None
    data["flip_effective"] = True if not labelled else flip_label_map(data["class_names"]) is not None

    def make_dataset(task, batch_size, seed, num_frames, image_size, stride=1, sampling="dense", flip=True):
        ds = video_dataset(data["paths"], labels=data["labels"], captions=data["captions"], num_frames=num_frames,
                           image_size=image_size, batch_size=batch_size, training=True, sampling=sampling,
                           stride=stride, seed=seed, flip=flip, class_names=data["class_names"],
                           skip_counter=skip_counter)
        if labelled:
            return ds.map(lambda b: {"videos": b["videos"], "labels": b["labels"]})
        tokenize = task.preprocessor.tokenize

        def to_pairs(batch):
            return {"videos": batch["videos"], "token_ids": tf.cast(tokenize(batch["captions"]), tf.int32),
                    "labels": text_label(batch["captions"])}

        return ds.map(to_pairs)

    data["make_dataset"] = make_dataset
    return data

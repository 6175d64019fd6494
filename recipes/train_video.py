r"""Train action recognition (issue #15): a `FlorenceVideoClassifier` inflated from an image preset.

Run on a class-per-folder tree of clips (video files — mp4/avi/webm, decoded with OpenCV — or frame folders):
  python recipes/train_video.py --train_data=DIR --preset=P --model_dir=M [--num_frames=8] [--image_size=64]
      [--steps=N]
On the built-in moving scenes (the default; written under M/data or --builtin_dir):
  python recipes/train_video.py --model_dir=/tmp/video
then: python recipes/eval_video.py --preset=/tmp/video/preset --data=/tmp/video/data/video/heldout --views=4x3

A short contrastive fine-tune on text-video pairs (a `filepath,caption` CSV) instead of labels:
  python recipes/train_video.py --objective=unicl --train_data=videos.csv --model_dir=M

The image encoder of --preset (a FlorenceCLIP or image-classifier preset) is inflated to 3-D
(`VideoCoSwinBackbone.from_image_backbone`: conv kernels centred or averaged along time, relative position tables
repeated along time); a preset that is already a video classifier continues from its weights. Training runs on the
toolkit's loop (`UniCLTrainer`: checkpoints in M/checkpoints, rerunning resumes) with label-smoothed cross-entropy
(or UniCL), AdamW with warm-up + cosine; the head also reads motion features (`--motion_radius`).
Augmentation: a random temporal position, a random square crop and a
horizontal flip, the same on every frame; flipped clips of mirrored classes ("moving left" / "moving right") swap
labels, and flips are turned off when a class names a side with no mirror class. Writes M/preset and
M/train_video.json (settings, time, skipped clips).
"""

import os
import sys

from absl import app
from absl import flags

flags.DEFINE_string("train_data", "builtin", "'builtin', a class-per-folder clip directory, or (unicl) a "
                    "filepath,caption CSV.")
flags.DEFINE_string("preset", "florence_mini_builtin", "Image preset to inflate, or a video classifier preset.")
flags.DEFINE_string("model_dir", None, "Run directory: checkpoints, TensorBoard, the trained preset.", required=True)
flags.DEFINE_enum("objective", "classify", ["classify", "unicl"], "Labels (cross-entropy) or captions (UniCL).")
flags.DEFINE_integer("num_frames", 8, "Frames per clip.")
flags.DEFINE_integer("frame_stride", 1, "Step between sampled frames (dense sampling).")
flags.DEFINE_enum("sampling", "dense", ["dense", "uniform"], "Clip sampling: dense (stride) or uniform segments.")
flags.DEFINE_integer("image_size", 64, "Frame side (square).")
flags.DEFINE_integer("steps", 600, "Optimizer steps.")
flags.DEFINE_integer("batch_size", 16, "Global batch size.")
flags.DEFINE_float("learning_rate", None, "Peak AdamW learning rate (warm-up + cosine to 0); default 1e-3 to "
                   "classify, 1e-4 for the unicl fine-tune (which starts from a trained text-image space).")
flags.DEFINE_integer("warmup_steps", 30, "Linear warm-up steps.")
flags.DEFINE_float("weight_decay", 0.05, "AdamW weight decay.")
flags.DEFINE_float("label_smoothing", 0.1, "Label smoothing (classify).")
flags.DEFINE_integer("temporal_kernel", 3, "Temporal kernel of the inflated conv token embeddings.")
flags.DEFINE_integer("temporal_stride", 2, "Temporal stride of the stem.")
flags.DEFINE_integer("temporal_window", 2, "Frames (after the stem) per attention window.")
flags.DEFINE_enum("inflation", "center", ["center", "mean"], "How 2-D conv kernels become 3-D.")
flags.DEFINE_integer("motion_radius", 2, "Motion features of the stem's tokens for the head (largest displacement "
                     "in tokens; 0 = none): see FlorenceVideoClassifier.")
flags.DEFINE_bool("flip", True, "Random horizontal flips (labels of mirrored classes swapped).")
flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.")
flags.DEFINE_integer("seed", 0, "Seed of the head's init, the data order and the built-in clips.")
flags.DEFINE_string("builtin_dir", None, "Where the built-in clips are written/reused (default <model_dir>/data).")
flags.DEFINE_integer("builtin_train", 800, "Built-in training clips.")
flags.DEFINE_integer("builtin_heldout", 200, "Built-in held-out clips (unseen shape/colour combinations).")
flags.DEFINE_float("builtin_distractor_speed", 0.25, "Speed of the built-in clips' other objects relative to the "
                   "scene's (the labelled object's motion dominates; 1.0: the first clips, where it did not).")

FLAGS = flags.FLAGS


def main(argv):
    del argv
    import time

    from florence_keras.training.task_training import TRAINING_FLAGS
    from florence_keras.training.task_training import train_task
    from florence_keras.training.video_training import load_video_task
    from florence_keras.training.video_training import video_training_data

    start = time.time()
    if FLAGS.learning_rate is None:
        FLAGS.learning_rate = 1e-3 if FLAGS.objective == "classify" else 1e-4
    train_data = FLAGS.train_data
    if train_data == "builtin":
        from florence_keras.data.video_builtin import ensure_builtin_video_data

        builtin = ensure_builtin_video_data(FLAGS.builtin_dir or os.path.join(FLAGS.model_dir, "data"),
                                            FLAGS.builtin_train, FLAGS.builtin_heldout, seed=FLAGS.seed,
                                            num_frames=max(FLAGS.num_frames, 8),
                                            distractor_speed=FLAGS.builtin_distractor_speed)
        train_data = builtin["train_captions"] if FLAGS.objective == "unicl" else builtin["train_dir"]
    data = video_training_data(train_data, FLAGS.objective)
    print(f"{len(data['paths'])} training clips; classes {data['class_names']}")

    def model_fn():
        return load_video_task(FLAGS.preset, data["class_names"], objective=FLAGS.objective,
                               num_frames=FLAGS.num_frames, image_size=FLAGS.image_size,
                               temporal_kernel=FLAGS.temporal_kernel, temporal_stride=FLAGS.temporal_stride,
                               temporal_window=FLAGS.temporal_window, inflation=FLAGS.inflation,
                               label_smoothing=FLAGS.label_smoothing, motion_radius=FLAGS.motion_radius)

    def make_dataset(request, task):
        return data["make_dataset"](task, request.batch_size, seed=request.seed * 1009 + request.input_pipeline_id,
                                    num_frames=FLAGS.num_frames, image_size=FLAGS.image_size,
                                    stride=FLAGS.frame_stride, sampling=FLAGS.sampling, flip=FLAGS.flip)

    settings = {name: FLAGS[name].value for name in (
        "preset", "objective", "num_frames", "frame_stride", "sampling", "image_size", "steps", "batch_size",
        "learning_rate", "warmup_steps", "weight_decay", "label_smoothing", "temporal_kernel", "temporal_stride",
        "temporal_window", "inflation", "motion_radius", "flip", "seed")}
    skipped = data["skip_counter"]
    command = " ".join(["python", "recipes/train_video.py"] + sys.argv[1:])
    train_task(model_fn, make_dataset, task="video", command=command, settings=settings,
               metadata={"train_data": str(train_data)},
               report=lambda: {"train_clips": len(data["paths"]), "class_names": data["class_names"],
                               "flip_effective": data.get("flip_effective"), "skipped_clips": skipped.count,
                               "skipped_reasons": dict(skipped.reasons)},
               note=lambda: f"skipped clips: {skipped.count}", start_time=start,
               **{name: FLAGS[name].value for name in TRAINING_FLAGS})


if __name__ == "__main__":
    app.run(main)

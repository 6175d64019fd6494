r"""Train object detection (issue #13): a `FlorenceDetector` (CoSwin stages 3-5 -> FPN -> [Dynamic Head] -> ATSS).

Run on COCO instances (file_name relative to the JSON's folder unless --image_root):
  python recipes/train_detection.py --train_data=instances.json --preset=PRESET --model_dir=M [--image_size=N]
      [--steps=N] [--freeze_backbone] [--class_agnostic] [--exclude_classes=a,b]

On the built-in scenes (the default: their instances_train.json; ~15 min on 2 CPU cores):
  python recipes/train_detection.py --model_dir=/tmp/det
  python recipes/eval_detection.py --preset=/tmp/det/preset --output_dir=/tmp/det/eval
Zero-shot split (head class-agnostic on 6 shapes, backbone frozen; the 2 others named by text at evaluation):
  python recipes/train_detection.py --model_dir=/tmp/zsd --class_agnostic --exclude_classes=star,hexagon
  python recipes/eval_detection.py --preset=/tmp/zsd/preset --output_dir=/tmp/zsd/eval --zero_shot \
      --class_names=star,hexagon

Training runs on the toolkit's loop (`UniCLTrainer`: checkpoints in `M/checkpoints`, rerunning resumes,
TensorBoard in `M/tensorboard`) with the Task's ATSS loss and AdamW (warm-up + cosine). `--class_agnostic`
trains one "object" class and implies `--freeze_backbone` (the CLIP features must stay aligned with the text
tower). `--exclude_classes` leaves out every training image holding one of those classes. Writes the model as a
`FlorenceDetector` preset `M/preset` and `M/train_detection.json`; bad records are skipped and counted there.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

flags.DEFINE_string("train_data", "builtin", "'builtin' or a COCO instances JSON.")
flags.DEFINE_string("image_root", None, "Folder of the JSON's file_names (default: the JSON's folder).")
flags.DEFINE_string("preset", "florence_mini_builtin", "Preset name, preset directory or handle to start from.")
flags.DEFINE_string("model_dir", None, "Run directory: checkpoints, TensorBoard, the trained preset.", required=True)
flags.DEFINE_integer("image_size", 128, "Training resolution (square; images are fitted and padded; a multiple of 32).")
flags.DEFINE_integer("steps", 2000, "Optimizer steps.")
flags.DEFINE_integer("batch_size", 16, "Global batch size.")
flags.DEFINE_float("learning_rate", 5e-4, "Peak AdamW learning rate (warm-up + cosine to 0).")
flags.DEFINE_integer("warmup_steps", 100, "Linear warm-up steps.")
flags.DEFINE_float("weight_decay", 0.05, "AdamW weight decay (not on norms and biases).")
flags.DEFINE_integer("fpn_channels", 64, "Width of the FPN and the head (the reference's 256 is slow on CPU).")
flags.DEFINE_integer("num_head_blocks", 0, "Dynamic Head blocks (0: the ATSS head's conv towers instead).")
flags.DEFINE_integer("num_tower_convs", 2, "Conv layers in each ATSS head tower.")
flags.DEFINE_float("anchor_scale", 8.0, "Anchor side in strides.")
flags.DEFINE_bool("freeze_backbone", False, "Keep the CoSwin weights fixed.")
flags.DEFINE_bool("class_agnostic", False, "Train one 'object' class (zero-shot detection; implies --freeze_backbone).")
flags.DEFINE_list("exclude_classes", [], "Leave out the training images holding these classes (zero-shot split).")
flags.DEFINE_integer("max_boxes", None, "Boxes kept per image (default: the most in the data).")
flags.DEFINE_float("scale_min", 0.75, "Smallest scale jitter.")
flags.DEFINE_float("scale_max", 1.25, "Largest scale jitter.")
flags.DEFINE_float("hue_delta", 0.5, "Random hue rotation (0.5: any hue), so classes are learned by shape, not colour.")
flags.DEFINE_bool("augment", True, "Random flip, scale jitter and placement/crop, boxes moved with the image.")
flags.DEFINE_integer("max_images", None, "Use at most this many training images.")
flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.")
flags.DEFINE_integer("seed", 0, "Seed of the head's init, the data order and the built-in scenes.")
flags.DEFINE_string("builtin_dir", None, "Where the built-in scenes are written/reused (default <model_dir>/data).")
flags.DEFINE_integer("builtin_train", 4000, "Built-in training scenes.")
flags.DEFINE_integer("builtin_heldout", 600, "Built-in held-out scenes (for eval_detection.py).")

FLAGS = flags.FLAGS


def main(argv):
    del argv
    import time

    from florence_keras.data.coco_detection import load_coco_detection
    from florence_keras.data.detection_builtin import ensure_builtin_detection_data
    from florence_keras.data.detection_dataset import detection_dataset
    from florence_keras.models.florence_detector import FlorenceDetector
    from florence_keras.training.task_training import TRAINING_FLAGS
    from florence_keras.training.task_training import train_task

    start = time.time()
    train_data = FLAGS.train_data
    builtin_dir = None
    if train_data == "builtin":
        builtin_dir = FLAGS.builtin_dir or os.path.join(FLAGS.model_dir, "data")
        train_data = ensure_builtin_detection_data(builtin_dir, FLAGS.builtin_train, FLAGS.builtin_heldout,
                                                   image_size=64, seed=FLAGS.seed)["train"]
    freeze_backbone = FLAGS.freeze_backbone
    if FLAGS.class_agnostic and not freeze_backbone:
        logging.warning("--class_agnostic: the backbone is frozen (--freeze_backbone), so its CLIP features stay "
                        "aligned with the text tower for zero-shot classification.")
        freeze_backbone = True
    records = load_coco_detection(train_data, image_root=FLAGS.image_root, exclude_classes=FLAGS.exclude_classes,
                                  max_boxes=FLAGS.max_boxes, max_images=FLAGS.max_images)
    counter = records["skip_counter"]
    print(f"{len(records['paths'])} training images, {int(records['box_mask'].sum())} boxes, "
          f"{len(records['class_names'])} classes at {FLAGS.image_size}px; {counter.summary()}")

    def model_fn():
        return FlorenceDetector.from_preset(
            FLAGS.preset, class_names=records["class_names"], category_ids=records["category_ids"],
            image_size=FLAGS.image_size, class_agnostic=FLAGS.class_agnostic, fpn_channels=FLAGS.fpn_channels,
            num_head_blocks=FLAGS.num_head_blocks, num_tower_convs=FLAGS.num_tower_convs,
            anchor_scale=FLAGS.anchor_scale, freeze_backbone=freeze_backbone)

    def make_dataset(request, task):
        normalize = task.preprocessor.image_converter.normalizer()
        return detection_dataset(records, FLAGS.image_size, request.batch_size, normalize,
                                 seed=request.seed * 1009 + request.input_pipeline_id, augment=FLAGS.augment,
                                 scale_range=(FLAGS.scale_min, max(FLAGS.scale_min, FLAGS.scale_max)),
                                 hue_delta=FLAGS.hue_delta)

    settings = {name: FLAGS[name].value for name in (
        "preset", "image_size", "steps", "batch_size", "learning_rate", "warmup_steps", "weight_decay",
        "fpn_channels", "num_head_blocks", "num_tower_convs", "anchor_scale", "class_agnostic", "exclude_classes",
        "scale_min", "scale_max", "hue_delta", "augment", "seed")}
    settings["freeze_backbone"] = freeze_backbone
    command = " ".join(["python", "recipes/train_detection.py"] + sys.argv[1:])
    train_task(model_fn, make_dataset, task="detection", command=command, settings=settings,
               metadata={"train_data": os.fspath(train_data)},
               report=lambda: {"train_data": os.fspath(train_data), "builtin_dir": builtin_dir,
                               "train_images": len(records["paths"]), "skipped": counter.count,
                               "skipped_reasons": dict(counter.reasons)},
               start_time=start, **{name: FLAGS[name].value for name in TRAINING_FLAGS})


if __name__ == "__main__":
    app.run(main)

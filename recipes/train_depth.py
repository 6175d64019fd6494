r"""Train monocular depth (issue #16): a `FlorenceDepthEstimator` (CoSwin pyramid + FPN decoder) on image-depth pairs.

Run (pairs listed in a CSV `image,depth`: 16-bit PNG in millimetres, 0 = invalid, or `.npy` in metres):
  python recipes/train_depth.py --train_data=pairs.csv --preset=PRESET --model_dir=M [--image_size=N] [--steps=N]

On the built-in scenes (the default: their depth PNGs, in the ground-plane layout where depth is visible in the
image; ~15 min on 2 CPU cores):
  python recipes/train_depth.py --model_dir=/tmp/depth
then score the held-out split: python recipes/eval_depth.py --preset=/tmp/depth/preset --output_dir=/tmp/depth/eval

The last --validation_pairs training pairs are held back and scored after training (`M/train_depth.json`,
"validation"): choose settings on them, never on the held-out split.

Training runs on the toolkit's loop (`UniCLTrainer`: checkpoints in `M/checkpoints`, rerunning resumes, TensorBoard
in `M/tensorboard`) with the Task's own loss (scale-invariant log loss, λ = --silog_lambda, plus gradient matching)
and AdamW (warm-up + cosine). Writes the trained model as a `FlorenceDepthEstimator` preset `M/preset` (its
`metadata.json` records how it was trained) and `M/train_depth.json`. Bad pairs are skipped and counted there.
"""

import os
import sys

from absl import app
from absl import flags

flags.DEFINE_list("train_data", ["builtin"], "'builtin' or image,depth CSV file(s).")
flags.DEFINE_string("preset", "florence_mini_builtin", "Preset name, preset directory or handle to start from.")
flags.DEFINE_string("model_dir", None, "Run directory: checkpoints, TensorBoard, the trained preset.", required=True)
flags.DEFINE_integer("image_size", 64, "Training resolution (square; a multiple of the backbone's stride, 32).")
flags.DEFINE_integer("steps", 1200, "Optimizer steps.")
flags.DEFINE_integer("batch_size", 32, "Global batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Peak AdamW learning rate (warm-up + cosine to 0).")
flags.DEFINE_integer("warmup_steps", 100, "Linear warm-up steps.")
flags.DEFINE_float("weight_decay", 0.05, "AdamW weight decay (not on norms and biases).")
flags.DEFINE_integer("decoder_channels", 64, "Width of the depth decoder.")
flags.DEFINE_float("silog_lambda", 0.85, "λ of the scale-invariant log loss (1 = fully scale-invariant).")
flags.DEFINE_float("gradient_weight", 0.5, "Weight of the gradient-matching loss.")
flags.DEFINE_float("max_shift", 0.125, "Largest random horizontal shift (fraction of the side).")
flags.DEFINE_float("max_vertical_shift", 0.0, "Largest random vertical shift (fraction of the side). 0: a fixed "
                   "camera's horizon stays put (the built-in scenes' depth follows the row).")
flags.DEFINE_bool("augment", True, "Random flip and shift, identical on image and depth.")
flags.DEFINE_integer("max_examples", None, "Use at most this many training pairs.")
flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.")
flags.DEFINE_integer("seed", 0, "Seed of the decoder's init, the data order and the built-in scenes.")
flags.DEFINE_string("builtin_dir", None, "Where the built-in scenes are written/reused (default <model_dir>/data).")
flags.DEFINE_integer("builtin_train", 4000, "Built-in training scenes.")
flags.DEFINE_integer("builtin_heldout", 600, "Built-in held-out scenes (for eval_depth.py).")
flags.DEFINE_enum("builtin_layout", "ground_plane", ["ground_plane", "flat"], "Built-in scenes' layout: "
                  "'ground_plane' (depth visible: size and row) or 'flat' (object depth random, not learnable).")
flags.DEFINE_integer("validation_pairs", 200, "Training pairs held back and scored after training (at most a "
                     "tenth of the pairs).")

FLAGS = flags.FLAGS


def main(argv):
    del argv
    import time

    from florence_keras.data.depth_augmentation import depth_dataset
    from florence_keras.data.depth_builtin import ensure_builtin_depth_data
    from florence_keras.data.depth_pairs import load_depth_pairs
    from florence_keras.evaluation.depth_evaluation import evaluate_depth
    from florence_keras.models.florence_depth_estimator import FlorenceDepthEstimator
    from florence_keras.training.task_training import TRAINING_FLAGS
    from florence_keras.training.task_training import train_task

    start = time.time()
    train_data = FLAGS.train_data
    if train_data == ["builtin"]:
        builtin_dir = FLAGS.builtin_dir or os.path.join(FLAGS.model_dir, "data")
        train_data = [ensure_builtin_depth_data(builtin_dir, FLAGS.builtin_train, FLAGS.builtin_heldout,
                                                image_size=64, seed=FLAGS.seed, layout=FLAGS.builtin_layout)["train"]]
    pairs = load_depth_pairs(train_data, FLAGS.image_size, max_examples=FLAGS.max_examples)
    num_validation = min(FLAGS.validation_pairs, len(pairs["images"]) // 10)
    train_images, train_depth = pairs["images"], pairs["depth"]
    if num_validation:
        train_images, train_depth = train_images[:-num_validation], train_depth[:-num_validation]
    print(f"{len(train_images)} training pairs at {FLAGS.image_size}px (+{num_validation} held back for "
          f"validation); {pairs['skip_counter'].summary()}")

    def model_fn():
        return FlorenceDepthEstimator.from_preset(
            FLAGS.preset, image_size=FLAGS.image_size, decoder_channels=FLAGS.decoder_channels,
            silog_lambda=FLAGS.silog_lambda, gradient_weight=FLAGS.gradient_weight)

    def make_dataset(request, task):
        normalize = task.preprocessor.image_converter.normalizer()
        return depth_dataset(train_images, train_depth, request.batch_size, normalize,
                             seed=request.seed * 1009 + request.input_pipeline_id, augment=FLAGS.augment,
                             max_shift=FLAGS.max_shift, max_vertical_shift=FLAGS.max_vertical_shift)

    def validate(task):  # scored as eval_depth.py scores: raw images in, depth at their size out
        if not num_validation:
            return {"validation": None}
        scores = evaluate_depth(task, pairs["images"][-num_validation:], pairs["depth"][-num_validation:])
        metrics = scores["metrics"]
        print(f"Validation ({num_validation} training pairs held back, no median scaling): "
              f"AbsRel {metrics['abs_rel']:.4f}, RMSE {metrics['rmse']:.3f}, δ1 {metrics['delta1']:.4f}")
        return {"validation": {"pairs": num_validation, "metrics": metrics,
                               "metrics_median_scaled": scores["metrics_median_scaled"]}}

    settings = {name: FLAGS[name].value for name in (
        "preset", "image_size", "steps", "batch_size", "learning_rate", "warmup_steps", "weight_decay",
        "decoder_channels", "silog_lambda", "gradient_weight", "max_shift", "max_vertical_shift", "augment", "seed",
        "builtin_layout", "validation_pairs")}
    command = " ".join(["python", "recipes/train_depth.py"] + sys.argv[1:])
    train_task(model_fn, make_dataset, task="depth", command=command, settings=settings,
               metadata={"train_data": [str(p) for p in train_data]}, after_training=validate,
               report=lambda: {"train_pairs": len(train_images), "skipped_pairs": pairs["skip_counter"].count,
                               "skipped_reasons": dict(pairs["skip_counter"].reasons)},
               start_time=start, **{name: FLAGS[name].value for name in TRAINING_FLAGS})


if __name__ == "__main__":
    app.run(main)

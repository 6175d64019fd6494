r"""Train image captioning (issue #14): a `FlorenceCaptioner` (CoSwin image tokens + transformer decoder).

Run (COCO captions JSON: images + annotations with `caption`; several captions per image are all used):
  python recipes/train_captioning.py --train_data=captions.json --preset=PRESET --model_dir=M [--image_size=N]

On the built-in scenes (the default: `captions_multi_train.json`, three reference captions per scene; ~15 min on 2
CPU cores):
  python recipes/train_captioning.py --model_dir=/tmp/captioning
then score the held-out split: python recipes/eval_captioning.py --preset=/tmp/captioning/preset --output_dir=OUT

The word vocabulary is built from the training captions (words seen >= --min_word_count times) and saved in the
preset. Training runs on the toolkit's loop (`UniCLTrainer`: checkpoints in `M/checkpoints`, rerunning resumes,
TensorBoard in `M/tensorboard`) with teacher-forced next-token cross-entropy and AdamW (warm-up + cosine); the
image encoder is fine-tuned unless --notrain_backbone. Writes the `FlorenceCaptioner` preset `M/preset` (its
`metadata.json` records how it was trained) and `M/train_captioning.json`. Bad records are skipped and counted.
"""

import os
import sys

from absl import app
from absl import flags

flags.DEFINE_list("train_data", ["builtin"], "'builtin' or COCO captions JSON file(s).")
flags.DEFINE_string("image_root", None, "Folder of the images' file_name (default: each JSON file's folder).")
flags.DEFINE_string("preset", "florence_mini_builtin", "Preset name, preset directory or handle to start from.")
flags.DEFINE_string("model_dir", None, "Run directory: checkpoints, TensorBoard, the trained preset.", required=True)
flags.DEFINE_integer("image_size", 64, "Training resolution (square; a multiple of the backbone's stride, 32).")
flags.DEFINE_integer("steps", 3000, "Optimizer steps.")
flags.DEFINE_integer("batch_size", 32, "Global batch size (image-caption pairs).")
flags.DEFINE_float("learning_rate", 1e-3, "Peak AdamW learning rate (warm-up + cosine to 0).")
flags.DEFINE_integer("warmup_steps", 100, "Linear warm-up steps.")
flags.DEFINE_float("weight_decay", 0.05, "AdamW weight decay (not on norms and biases).")
flags.DEFINE_bool("train_backbone", True, "Fine-tune the image encoder (else only the decoder trains).")
flags.DEFINE_integer("max_length", 24, "Longest caption in tokens, <start> and <end> included (longer are cut).")
flags.DEFINE_integer("min_word_count", 3, "Words seen fewer times in the training captions are <unk>.")
flags.DEFINE_integer("max_vocabulary", 10000, "Largest vocabulary (special tokens included).")
flags.DEFINE_integer("hidden_dim", 128, "Decoder width.")
flags.DEFINE_integer("num_layers", 2, "Decoder layers.")
flags.DEFINE_integer("num_heads", 4, "Decoder attention heads.")
flags.DEFINE_integer("intermediate_dim", 512, "Decoder FFN width.")
flags.DEFINE_float("dropout", 0.1, "Decoder dropout.")
flags.DEFINE_enum("image_token_source", "p4_final", ["p4_final", "final"],
                  "Image tokens the decoder attends to: the stage before last + its final-map parent, or the final map.")
flags.DEFINE_integer("num_beams", 1, "Default beam width saved in the preset (1 = greedy).")
flags.DEFINE_float("length_penalty", 0.0, "Default beam length penalty α saved in the preset.")
flags.DEFINE_integer("max_images", None, "Use at most this many training images.")
flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.")
flags.DEFINE_integer("seed", 0, "Seed of the decoder's init, the data order and the built-in scenes.")
flags.DEFINE_string("builtin_dir", None, "Where the built-in scenes are written/reused (default <model_dir>/data).")
flags.DEFINE_integer("builtin_train", 4000, "Built-in training scenes.")
flags.DEFINE_integer("builtin_heldout", 600, "Built-in held-out scenes (for eval_captioning.py).")

FLAGS = flags.FLAGS


def builtin_captions(builtin_dir, split, num_train, num_heldout, seed):
    """The built-in scenes' several-captions-per-image COCO file of `split` (written once, then reused)."""
    from florence_keras.data.builtin_dataset import ensure_builtin_dataset

    return ensure_builtin_dataset(builtin_dir, num_train, num_heldout, image_size=64, seed=seed)["captions_multi"][split]


def main(argv):
    del argv
    import time

    import keras

    from florence_keras.data.caption_batches import caption_dataset
    from florence_keras.data.caption_batches import caption_pairs
    from florence_keras.data.coco_captions import load_caption_data
    from florence_keras.models.caption_vocabulary import CaptionVocabulary
    from florence_keras.models.caption_vocabulary import build_vocabulary
    from florence_keras.models.florence_captioner import FlorenceCaptioner
    from florence_keras.training.task_training import TRAINING_FLAGS
    from florence_keras.training.task_training import train_task

    start = time.time()
    train_data = FLAGS.train_data
    if train_data == ["builtin"]:
        builtin_dir = FLAGS.builtin_dir or os.path.join(FLAGS.model_dir, "data")
        train_data = [builtin_captions(builtin_dir, "train", FLAGS.builtin_train, FLAGS.builtin_heldout, FLAGS.seed)]
    data = load_caption_data(train_data, FLAGS.image_size, image_root=FLAGS.image_root, max_images=FLAGS.max_images)
    vocabulary = build_vocabulary([t for texts in data["captions"] for t in texts], max_size=FLAGS.max_vocabulary,
                                  min_count=FLAGS.min_word_count)
    image_index, token_ids = caption_pairs(data["captions"], CaptionVocabulary(vocabulary), FLAGS.max_length)
    print(f"{len(data['images'])} training images, {len(token_ids)} captions at {FLAGS.image_size}px; vocabulary of "
          f"{len(vocabulary)} tokens; {data['skip_counter'].summary()}")

    def model_fn():
        keras.utils.set_random_seed(FLAGS.seed)
        return FlorenceCaptioner.from_preset(
            FLAGS.preset, vocabulary=vocabulary, image_size=FLAGS.image_size, max_length=FLAGS.max_length,
            hidden_dim=FLAGS.hidden_dim, num_layers=FLAGS.num_layers, num_heads=FLAGS.num_heads,
            intermediate_dim=FLAGS.intermediate_dim, dropout=FLAGS.dropout, train_backbone=FLAGS.train_backbone,
            num_beams=FLAGS.num_beams, length_penalty=FLAGS.length_penalty,
            image_token_source=FLAGS.image_token_source)

    def make_dataset(request, task):
        normalize = task.preprocessor.image_converter.normalizer()
        return caption_dataset(data["images"], image_index, token_ids, request.batch_size, normalize,
                               seed=request.seed * 1009 + request.input_pipeline_id)

    settings = {name: FLAGS[name].value for name in (
        "preset", "image_size", "steps", "batch_size", "learning_rate", "warmup_steps", "weight_decay",
        "train_backbone", "max_length", "min_word_count", "max_vocabulary", "hidden_dim", "num_layers", "num_heads",
        "intermediate_dim", "dropout", "num_beams", "length_penalty", "image_token_source", "seed")}
    command = " ".join(["python", "recipes/train_captioning.py"] + sys.argv[1:])
    train_task(model_fn, make_dataset, task="captioning", command=command, settings=settings,
               metadata={"train_data": [str(p) for p in train_data]},
               report=lambda: {"train_images": len(data["images"]), "train_captions": int(len(token_ids)),
                               "vocabulary_size": len(vocabulary), "skipped": data["skip_counter"].count,
                               "skipped_reasons": dict(data["skip_counter"].reasons)},
               start_time=start, **{name: FLAGS[name].value for name in TRAINING_FLAGS})


if __name__ == "__main__":
    app.run(main)

r"""Pretrain the METER fusion stack (issue #14 item 5): image-text matching with in-batch hard negatives + masked
language modelling, as a stage before VQA fine-tuning.

Run (captions CSV `filepath,caption`, or COCO captions JSON; several captions per image are all used):
  python recipes/pretrain_fusion.py --train_data=captions.csv --preset=PRESET --model_dir=M [--steps=N]
      [--image_size=N]

On the built-in scenes (the default: the VQA training scenes with three captions each, no held-out scene):
  python recipes/pretrain_fusion.py --model_dir=/tmp/fusion
then fine-tune VQA from it (the fusion settings must be the same; the defaults are):
  python recipes/train_vqa.py --preset=/tmp/fusion/preset --model_dir=/tmp/vqa

A `FlorenceFusionPretrainer` (the preset's encoders + `FlorenceVQA`'s fusion; ITM head; MLM head tied to the token
embedding) trained on the toolkit's loop (`UniCLTrainer`: checkpoints in `M/checkpoints`, rerunning resumes) with
AdamW (warm-up + cosine). Writes the preset `M/preset` (`metadata.json` records how it was trained) and
`M/pretrain_fusion.json` (final ITM / MLM losses and ITM accuracy on a training batch). Bad records are skipped and
counted.
"""

import os
import sys

from absl import app
from absl import flags

flags.DEFINE_list("train_data", ["builtin"], "Captions .csv/.tsv (filepath,caption) or COCO captions .json "
                  "file(s), or 'builtin' (the built-in scenes' training split, three captions per scene).")
flags.DEFINE_string("image_root", None, "Folder of relative image paths (default: each file's folder).")
flags.DEFINE_string("preset", "florence_mini_builtin", "Preset name, preset directory or handle to start from.")
flags.DEFINE_string("model_dir", None, "Run directory: checkpoints, TensorBoard, the trained preset.", required=True)
flags.DEFINE_integer("image_size", 64, "Training resolution (square; a multiple of the backbone's stride, 32).")
flags.DEFINE_integer("steps", 500, "Optimizer steps.")
flags.DEFINE_integer("batch_size", 64, "Global batch size (the in-batch negatives come from it).")
flags.DEFINE_float("learning_rate", 5e-4, "Peak AdamW learning rate (warm-up + cosine to 0).")
flags.DEFINE_integer("warmup_steps", 50, "Linear warm-up steps.")
flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not on norms and biases).")
flags.DEFINE_integer("text_length", 32, "Caption tokens, start and end tokens included.")
flags.DEFINE_integer("fusion_dim", 128, "Fusion width (METER: 768); train_vqa.py's default.")
flags.DEFINE_integer("fusion_layers", 2, "Co-attention layers per stream (METER: 6; train_vqa.py trains 4 by default, "
                     "and a fusion preset brings its own count).")
flags.DEFINE_integer("fusion_heads", 4, "Fusion attention heads (METER: 12); train_vqa.py's default.")
flags.DEFINE_float("dropout", 0.1, "Fusion dropout.")
flags.DEFINE_integer("image_token_stage", -1, "CoSwin stage whose map gives the image tokens (0-based); -1: the "
                     "last stage after the final norm (as train_vqa.py).")
flags.DEFINE_float("mlm_rate", 0.15, "Fraction of each caption's tokens masked and predicted.")
flags.DEFINE_float("itm_weight", 1.0, "Weight of the ITM loss.")
flags.DEFINE_float("mlm_weight", 1.0, "Weight of the MLM loss.")
flags.DEFINE_bool("tie_mlm_decoder", True, "MLM decoder = the text encoder's token embedding (else an own Dense).")
flags.DEFINE_bool("freeze_backbone", False, "Train the fusion and heads only.")
flags.DEFINE_integer("max_images", None, "Use at most this many images (per file).")
flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.")
flags.DEFINE_integer("seed", 0, "Seed of the init, the data order, the sampling and the built-in scenes.")
flags.DEFINE_string("builtin_dir", None, "Where the built-in scenes are written/reused (default <model_dir>/data).")
flags.DEFINE_integer("builtin_train", 4000, "Built-in training scenes (train_vqa.py's default: the same scenes).")

FLAGS = flags.FLAGS


def main(argv):
    del argv
    import time

    import keras
    import numpy as np

    from florence_keras.data.fusion_pretraining_data import caption_pairs
    from florence_keras.data.fusion_pretraining_data import ensure_builtin_captions
    from florence_keras.data.fusion_pretraining_data import fusion_pretraining_dataset
    from florence_keras.data.fusion_pretraining_data import load_image_captions
    from florence_keras.evaluation import reporting
    from florence_keras.models.florence_fusion_pretrainer import FlorenceFusionPretrainer
    from florence_keras.training import AdamWConfig
    from florence_keras.training import UniCLTrainer

    start = time.time()
    train_data = FLAGS.train_data
    if train_data == ["builtin"]:
        builtin_dir = FLAGS.builtin_dir or os.path.join(FLAGS.model_dir, "data")
        train_data = [ensure_builtin_captions(builtin_dir, FLAGS.builtin_train, seed=FLAGS.seed)]
    data = load_image_captions(train_data, FLAGS.image_size, image_root=FLAGS.image_root,
                               max_images=FLAGS.max_images)
    image_index, texts = caption_pairs(data["captions"])
    print(f"{len(data['images'])} training images, {len(texts)} captions at {FLAGS.image_size}px; "
          f"{data['skip_counter'].summary()}")

    def model_fn():
        keras.utils.set_random_seed(FLAGS.seed)
        model = FlorenceFusionPretrainer.from_preset(
            FLAGS.preset, image_size=FLAGS.image_size, text_length=FLAGS.text_length, fusion_dim=FLAGS.fusion_dim,
            fusion_layers=FLAGS.fusion_layers, fusion_heads=FLAGS.fusion_heads, dropout=FLAGS.dropout,
            image_token_stage=None if FLAGS.image_token_stage < 0 else FLAGS.image_token_stage,
            mlm_rate=FLAGS.mlm_rate, itm_weight=FLAGS.itm_weight, mlm_weight=FLAGS.mlm_weight,
            tie_mlm_decoder=FLAGS.tie_mlm_decoder, seed=FLAGS.seed)
        if FLAGS.freeze_backbone:
            model.backbone.trainable = False
        return model

    trainer = None
    token_ids = None

    def make_dataset(request):
        nonlocal token_ids
        model = trainer.model
        if token_ids is None:
            token_ids = np.concatenate([np.asarray(model.tokenize_texts(texts[i:i + 4096]))
                                        for i in range(0, len(texts), 4096)])
        return fusion_pretraining_dataset(data["images"], image_index, token_ids, request.batch_size,
                                          model.preprocessor.image_converter.normalizer(),
                                          seed=request.seed * 1009 + request.input_pipeline_id)

    optimizer = AdamWConfig(learning_rate=FLAGS.learning_rate, weight_decay=FLAGS.weight_decay, beta_2=0.999,
                            epsilon=1e-8, warmup_steps=min(FLAGS.warmup_steps, FLAGS.steps - 1))
    trainer = UniCLTrainer(model_fn, make_dataset, model_dir=FLAGS.model_dir, total_steps=FLAGS.steps,
                           global_batch_size=FLAGS.batch_size, optimizer=optimizer, image_size=FLAGS.image_size,
                           checkpoint_every=FLAGS.checkpoint_every, seed=FLAGS.seed)
    result = trainer.fit()
    train_seconds = time.time() - start
    if result["preempted"]:
        print(f"Stopped at step {result['step']} (preempted); rerun to resume.")
        return
    model = trainer.model
    # The objectives on one fixed training batch (no dropout): what the stage reached.
    probe = next(iter(fusion_pretraining_dataset(data["images"], image_index, token_ids,
                                                 min(FLAGS.batch_size, len(texts)),
                                                 model.preprocessor.image_converter.normalizer(), seed=12345)))
    terms = {k: float(v) for k, v in model.loss_terms(probe, probe["labels"], training=False).items()}
    command = " ".join(["python", "recipes/pretrain_fusion.py"] + sys.argv[1:])
    preset_dir = os.path.join(FLAGS.model_dir, "preset")
    settings = {name: FLAGS[name].value for name in (
        "preset", "image_size", "steps", "batch_size", "learning_rate", "warmup_steps", "weight_decay",
        "text_length", "fusion_dim", "fusion_layers", "fusion_heads", "dropout", "image_token_stage", "mlm_rate",
        "itm_weight", "mlm_weight", "tie_mlm_decoder", "freeze_backbone", "seed")}
    model.save_to_preset(preset_dir, metadata={"florence_training": dict(
        settings, task="fusion_pretraining", command=command, train_data=[str(p) for p in train_data],
        final_loss=result["loss"], probe=terms, train_seconds=train_seconds)})
    reporting.write_json({"train": result, "settings": settings, "command": command, "preset_dir": preset_dir,
                          "train_images": int(len(data["images"])), "train_captions": len(texts), "probe": terms,
                          "skipped": data["skip_counter"].count, "skipped_reasons": dict(data["skip_counter"].reasons),
                          "seconds": train_seconds}, os.path.join(FLAGS.model_dir, "pretrain_fusion.json"))
    print(f"Trained {result['step']} steps in {train_seconds:.0f} s (final loss {result['loss']:.4f}; on a training "
          f"batch: ITM {terms['itm']:.4f}, accuracy {terms['itm_accuracy']:.3f}, MLM {terms['mlm']:.4f}); wrote the "
          f"preset {preset_dir}")


if __name__ == "__main__":
    app.run(main)

r"""Train visual question answering (issue #14): a `FlorenceVQA` (CoSwin + text tokens, METER co-attention, answer
classifier) on a VQA v2 set.

Run:
  python recipes/train_vqa.py --questions=Q.json --annotations=A.json --image_dir=DIR \
      [--image_template='COCO_{split}_{image_id:012d}.jpg'] --preset=PRESET --model_dir=M [--image_size=N] [--steps=N]

On the built-in scenes (the default: their VQA v2 files; 13 min 18 s alone on a 2-core AMD Zen 4, stage 0 2 min 36 s
of it; docs/vqa.md, session 27):
  python recipes/train_vqa.py --model_dir=/tmp/vqa
then score the held-out split: python recipes/eval_vqa.py --preset=/tmp/vqa/preset --output_dir=/tmp/vqa/eval

After a fusion pretraining stage (recipes/pretrain_fusion.py: ITM + MLM), start from it:
  python recipes/train_vqa.py --fusion_preset=/tmp/fusion/preset --model_dir=/tmp/vqa
(its fusion weights, fusion settings and backbone; with --preset=P the backbone comes from P instead).

The answer vocabulary is the --num_answers most frequent answers of the training annotations after the official
evaluator's normalisation; targets are soft (0.3/0.6/0.9/1.0 for 1/2/3/>=4 agreeing humans); the loss is BCE.
Training runs on the toolkit's loop (`UniCLTrainer`: checkpoints in `M/checkpoints`, rerunning resumes) with AdamW
(warm-up + cosine). By default the pretrained encoders are frozen and their outputs computed once per image and
question (`--cache_features`), so each step runs only the fusion and the head: on the built-in scenes 4,000 such
steps cost what 1,500 whole-model steps did and score ~10 points higher (docs/vqa.md). `--nofreeze_backbone`
fine-tunes the whole model, the encoders at --backbone_lr_multiplier (0.1) times the fusion's and head's rate
(METER's recipe; from a preset of a frozen run too, e.g. `--preset=M/preset --nofreeze_backbone`). Writes the
`FlorenceVQA` preset `M/preset` (the vocabulary is in its config; `metadata.json` records how it was trained) and
`M/train_vqa.json`. Bad records (no annotation, bad answers, missing or undecodable images) are skipped and counted.

On the built-in scenes (`--question_prior=auto`) a question-only branch is trained beside the fusion as a product of
experts and kept at inference for the answer type and, floored, its preferences within it: their held-out split
asks about shape-colour pairs never seen in training, whose answers the question alone would rule out (87.2–88.2
at seeds 0–4 against 84.5–87.0 without it; docs/vqa.md, session 20). Other data keeps it off unless asked
(`--question_prior=on`).

Also on the built-in scenes only (they know where every object is): training-only "where is the X?" questions
(`--place_questions`) and an attention target that pulls the fusion's text-to-image attention at each named object
toward that object's image tokens (`--grounding_weight`): together 90.07–91.20 at seeds 0–3 against 87.44–88.71
("which side" 91 against 75–79; docs/vqa.md, session 24). And stage 0 (`--dense_labels`): a per-pixel decoder
(`DenseLabelDecoder`) fitted on the frozen encoder's pyramid of 12,000 training scenes to their occlusion code
(background / in full view / partly hidden), frozen, its pooled probabilities joining every image token, with
training-only "is the X partly hidden?" (`--occlusion_questions`) and "is the X in front of the Y?" for every
occluding pair (`--front_pair_questions`): "in front" from chance to 82–87, yes/no 88 -> 92–93, overall +0.7 to
+1.4 (docs/vqa.md, session 26). Stage 0's decoder stops at stride 4 (`--dense_label_upsamplings=0`) and the fusion
trains 4,000 steps, so that the run fits 15 minutes on a Zen 4; session 26's `--dense_label_upsamplings=2
--steps=5300` scored ~1.4 points higher (means of seeds 0–3) and would take ~21 minutes there (projected from its
measured stage 0 and step time; docs/vqa.md, session 27). Stage 0's decoder
is written to `M/dense_label_decoder.npz` with the settings it was fitted with; a rerun with the same settings
reuses it, one with others fits it again (or is refused while checkpoints trained on the old one are there).
"""

import os
import sys

from absl import app
from absl import flags

flags.DEFINE_string("questions", "builtin", "VQA v2 questions JSON, or 'builtin' (the built-in scenes).")
flags.DEFINE_string("annotations", None, "VQA v2 annotations JSON (required unless --questions=builtin).")
flags.DEFINE_string("image_dir", None, "Folder of the images (default: the questions file's folder).")
flags.DEFINE_string("image_template", "COCO_{split}_{image_id:012d}.jpg",
                    "Image file name under --image_dir: str.format with {split} (the questions file's "
                    "data_subtype), {image_id}, {file_name} (from the questions file's 'images' list).")
flags.DEFINE_string("split", None, "The {split} of --image_template (default: the questions file's data_subtype).")
flags.DEFINE_string("preset", "florence_mini_builtin", "Preset name, preset directory or handle to start from.")
flags.DEFINE_string("fusion_preset", None, "A FlorenceFusionPretrainer preset (recipes/pretrain_fusion.py): the "
                    "fusion stack starts from its weights, and its fusion settings are the defaults of the fusion "
                    "flags; the backbone too unless --preset is given.")
flags.DEFINE_string("model_dir", None, "Run directory: checkpoints, TensorBoard, the trained preset.", required=True)
flags.DEFINE_integer("image_size", 64, "Training resolution (square; a multiple of the backbone's stride, 32).")
flags.DEFINE_integer("steps", None, "Optimizer steps (default with --freeze_backbone, whose steps run only the "
                     "fusion and the head: 4000 on the built-in scenes, whose stage 0 takes the rest of their 15 "
                     "minutes, 5300 on other data; 1500 with --nofreeze_backbone).")
flags.DEFINE_integer("batch_size", None, "Global batch size (default: 32 with --freeze_backbone: more, cheaper fusion "
                     "steps in the same time; 64 with --nofreeze_backbone).")
flags.DEFINE_float("learning_rate", 5e-4, "Peak AdamW learning rate (warm-up + cosine to 0).")
flags.DEFINE_integer("warmup_steps", 100, "Linear warm-up steps.")
flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not on norms and biases).")
flags.DEFINE_integer("num_answers", 3129, "Answer vocabulary size (most frequent normalised training answers).")
flags.DEFINE_integer("question_length", None, "Question tokens, start and end tokens included (default: the "
                     "longest training question, rounded up to a multiple of 8, at most the text encoder's context).")
flags.DEFINE_integer("fusion_dim", 128, "Fusion width (METER: 768).")
flags.DEFINE_integer("fusion_layers", 4, "Co-attention layers per stream (METER: 6; on the built-in scenes 4 "
                     "score 3.2 / 7.7 points above 2 at seeds 0 / 1: docs/vqa.md).")
flags.DEFINE_integer("fusion_heads", 4, "Fusion attention heads (METER: 12).")
flags.DEFINE_float("dropout", 0.1, "Fusion dropout.")
flags.DEFINE_integer("image_token_stage", -1, "CoSwin stage whose map gives the image tokens (0-based); -1: the "
                     "last stage after the final norm.")
flags.DEFINE_bool("image_position_embedding", True, "Add a learned position embedding to each image token before "
                  "the fusion.")
flags.DEFINE_list("image_scales", ["1", "2"], "Image token scales: resize factors of the image, each encoded by "
                  "the CoSwin, through its own LayerNorm + projection, tokens concatenated (1,2: the map at "
                  "--image_size and at twice it, multi-scale tokens as in S2, Shi et al. 2024; built-in held-out "
                  "73.37 / 67.35 against 65.86 / 65.41 with 1 alone at seeds 0 / 1, docs/vqa.md). 1: one scale, "
                  "as presets before session 10.")
flags.DEFINE_bool("image_detail", True, "Each image token also carries the 2x2 cells of the stage before it "
                  "(space-to-depth; the local detail the last stage pooled away; +4.2 / +5.0 points at seeds 0 / 1 "
                  "on the built-in scenes, docs/vqa.md). --noimage_detail: the last stage's cells alone.")
flags.DEFINE_enum("image_summary", "pooled", ["mean", "pooled"], "The image stream's first token (the one its "
                  "pooler reads): 'pooled': the encoder's own pooled features at the first scale (what its "
                  "contrastive loss trained), through a LayerNorm + projection; 'mean': the mean of all image tokens "
                  "(before session 18). Built-in scenes, five seeds: 'which side' 79.5 against 75.7, overall 86.11 "
                  "against 85.62 (docs/vqa.md).")
flags.DEFINE_float("text_summary_dropout", 0.0, "In training, zero the question's summary token (the text stream's "
                   "first token, the end token's state, the only one that has seen the whole question) for this "
                   "fraction of the questions, so the fusion also reads the question's other tokens; inference is "
                   "unchanged. On the built-in scenes 0.3 removes answers of the wrong type to questions naming an "
                   "unseen shape-colour pair, but overall it measured neutral over ten runs (docs/vqa.md, session "
                   "19), so it is off by default.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_enum("question_prior", "auto", ["auto", "on", "off"], "A question-only branch trained beside the "
                  "fusion as a product of experts (Clark et al. 2019; RUBi, Cadene et al. 2019): the answer loss is "
                  "taken on the sum of both branches' logits, so the fusion learns what the question alone does not "
                  "tell; at inference the branch only picks the answer type. For held-out data whose answer priors "
                  "differ from training (VQA-CP; the built-in held-out split, whose objects have unseen "
                  "shape-colour pairs). 'auto': on for the built-in scenes, off for other data (VQA v2's priors "
                  "hold on its own test split); going on from a FlorenceVQA preset, that preset's choice.")
flags.DEFINE_enum("colour_permutation", "auto", ["auto", "on", "off"], "Train also on a copy of each image with "
                  "its RGB channels permuted, carrying only its questions of --colour_permutation_answer_types that "
                  "name no colour and whose answers name none ('is there a hexagon?'), so that shapes are seen in "
                  "new colours (florence_keras.data.vqa_colour_permutation). For held-out data with shape-colour "
                  "pairs unseen in training (CLEVR-CoGenT; the built-in held-out split). 'auto': on for the "
                  "built-in scenes, off for other data (a real question without a colour word may still depend on "
                  "colour: 'is the light green?' is caught, 'is the banana ripe?' is not).")
flags.DEFINE_list("colour_permutation_answer_types", ["yes/no"], "With --colour_permutation: the answer types whose "
                  "colour-free questions the copies carry (yes/no, number, other). On the built-in scenes copying "
                  "the counting questions too cost 'which side' ~10 points at two of three seeds (docs/vqa.md, "
                  "session 22).")
flags.DEFINE_enum("place_questions", "auto", ["auto", "on", "off"], "Add training-only questions 'where is the "
                  "X?' for every object whose name is unique in its scene, answered by the ninth of the image "
                  "holding it ('top left' ... 'center' ... 'bottom right'): a per-object target that, with "
                  "--grounding_weight, ties each named object to where it is (docs/vqa.md, session 24). Needs the "
                  "built-in scenes (their objects); 'auto': on for them, off for other data.")
flags.DEFINE_enum("occlusion_questions", "auto", ["auto", "on", "off"], "Add training-only questions 'is the X "
                  "partly hidden?' for every object whose name is unique in its scene (yes where nearer objects "
                  "hide >= 5% of it, the 'in front' questions' threshold): a per-object target for 'is the X in "
                  "front of the Y?'; alone it measured no gain, with an occlusion stream in the image tokens it "
                  "was half of lifting 'in front' (docs/vqa.md, session 25). Needs the built-in scenes; 'auto': on "
                  "for them.")
flags.DEFINE_enum("front_pair_questions", "auto", ["auto", "on", "off"], "Add training-only 'is the X in front of "
                  "the Y?' questions for every pair of uniquely named objects of which the nearer hides >= 5% of "
                  "the other, both orders (the scenes ask it of their two nearest objects only). With "
                  "--occlusion_questions and an occlusion stream, half of a lab's lift of 'in front'; without the "
                  "stream no gain (docs/vqa.md, session 25). Needs the built-in scenes; 'auto': on for them.")
flags.DEFINE_enum("dense_labels", "auto", ["auto", "on", "off"], "Stage 0: fit a per-pixel decoder "
                  "(DenseLabelDecoder) on the frozen image encoder's feature pyramid to the scenes' occlusion code "
                  "(background / in full view / partly hidden), then give each image token its cell's pooled "
                  "probabilities (FlorenceVQA(dense_label_classes=3)): what the last stage pools away, which "
                  "object of a cell is partly hidden (docs/vqa.md, session 26). Needs the built-in scenes (their "
                  "per-pixel labels); 'auto': on for them, off for other data, and the preset's own decoder when "
                  "going on from a FlorenceVQA preset that has one.")
flags.DEFINE_integer("dense_label_steps", 1500, "Stage 0 (--dense_labels): the decoder's optimizer steps "
                     "(batches of 32 images, AdamW 2e-3, warm-up + cosine).", lower_bound=1)
flags.DEFINE_integer("dense_label_upsamplings", 0, "Stage 0 (--dense_labels): the decoder's x2 upsampling units "
                     "after its finest level (stride 4): 0 stops there and resizes the logits to the image, 2 "
                     "upsamples to full resolution at ~4x the decoder's cost (docs/vqa.md, session 27).",
                     lower_bound=0)
flags.DEFINE_integer("dense_label_scenes", 12000, "Stage 0 (--dense_labels): the training scenes it fits on (at "
                     "least --builtin_train: the VQA's own scenes, then more of the same draw; never held-out "
                     "ones). Drawing and encoding them costs seconds; on 4,000 the decoder overfits (docs/vqa.md, "
                     "session 26).", lower_bound=1)
flags.DEFINE_float("grounding_weight", None, "The weight of an attention target in training: the fusion's "
                   "text-to-image attention at each object a question names is pulled toward that object's "
                   "image tokens (the renderer's visible masks; florence_keras.data.vqa_grounding). Needs the "
                   "built-in scenes. Default: 1 for them, 0 (off) for other data.", lower_bound=0.0)
flags.DEFINE_integer("colour_permutation_copies", 1, "With --colour_permutation: channel-permuted copies per "
                     "training image (1 to 5, each a different non-identity order of the RGB channels).")
flags.DEFINE_float("question_prior_floor", 0.1, "With --question_prior, at inference: the least share of its "
                   "type's question-only score an answer keeps (1: the question picks the answer type only; 0: the "
                   "question-only branch's full preferences within the type). Chosen on built-in seeds 1 and 2, "
                   "checked on seeds 0, 3 and 4 (docs/vqa.md, session 20).", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_float("backbone_lr_multiplier", 0.1, "The pretrained encoders' learning rate as a fraction of "
                   "--learning_rate (the fusion's and the head's): METER's per-module rates (1: one rate for all).")
flags.DEFINE_bool("freeze_backbone", True, "Train the fusion and the head only (--nofreeze_backbone: fine-tune the "
                  "encoders too, at --backbone_lr_multiplier times the rate).")
flags.DEFINE_bool("cache_features", True, "With --freeze_backbone: encode every image and question once and train "
                  "the fusion and the head on the cached features (each step then skips the encoders).")
flags.DEFINE_integer("max_questions", None, "Use at most this many training questions.")
flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.")
flags.DEFINE_integer("seed", 0, "Seed of the fusion's init, the data order and the built-in scenes.")
flags.DEFINE_string("builtin_dir", None, "Where the built-in scenes are written/reused (default <model_dir>/data).")
flags.DEFINE_integer("builtin_train", 4000, "Built-in training scenes.")
flags.DEFINE_integer("builtin_heldout", 600, "Built-in held-out scenes (for eval_vqa.py).")

FLAGS = flags.FLAGS

DENSE_CLASS_WEIGHTS = (0.1, 1.0, 1.0)  # stage 0's loss weights: background, in full view, partly hidden


def _image_scales():
    try:
        return tuple(int(scale) for scale in FLAGS.image_scales)
    except ValueError:
        raise app.UsageError(f"--image_scales must be a comma-separated list of ints. Received: "
                             f"{','.join(FLAGS.image_scales)}") from None


def main(argv):
    del argv
    import time

    import keras
    import numpy as np

    from florence_keras.data.scene import DENSE_OCCLUSION_CLASSES
    from florence_keras.data.scene_generator import SceneGenerator
    from florence_keras.data.vqa_builtin import add_front_pair_questions
    from florence_keras.data.vqa_builtin import add_occlusion_questions
    from florence_keras.data.vqa_builtin import add_place_questions
    from florence_keras.data.vqa_builtin import builtin_occlusion_scenes
    from florence_keras.data.vqa_builtin import ensure_builtin_vqa_data
    from florence_keras.data.vqa_colour_permutation import add_colour_permuted_copies
    from florence_keras.data.vqa_dataset import vqa_dataset
    from florence_keras.data.vqa_feature_dataset import vqa_feature_dataset
    from florence_keras.data.vqa_grounding import builtin_grounding
    from florence_keras.data.vqa_targets import build_answer_vocabulary
    from florence_keras.data.vqa_targets import soft_scores
    from florence_keras.data.vqa_targets import vocabulary_answer_types
    from florence_keras.data.vqa_v2 import load_vqa_images
    from florence_keras.data.vqa_v2 import read_vqa_v2
    from florence_keras.models import fusion_weights
    from florence_keras.models import preset_registry
    from florence_keras.models.florence_vqa import FlorenceVQA
    from florence_keras.models.token_packing import count_cut
    from florence_keras.models.token_packing import fitting_sequence_length
    from florence_keras.models.vqa_feature_cache import cache_vqa_features
    from florence_keras.training.dense_label_fitting import fit_dense_label_decoder
    from florence_keras.training.dense_label_fitting import read_fitted_decoder
    from florence_keras.training.dense_label_fitting import save_fitted_decoder
    from florence_keras.training.layerwise_lr_decay import backbone_lr_multipliers
    from florence_keras.training.task_training import TRAINING_FLAGS
    from florence_keras.training.task_training import train_task

    start = time.time()
    if FLAGS.steps is None:
        # (the built-in scenes' stage 0 takes its minutes out of the fusion's: their whole run fits 15 minutes)
        FLAGS.steps = (4000 if FLAGS.questions == "builtin" else 5300) if FLAGS.freeze_backbone else 1500
    if FLAGS.batch_size is None:
        FLAGS.batch_size = 32 if FLAGS.freeze_backbone else 64
    if FLAGS.batch_size < 1:
        raise app.UsageError(f"--batch_size must be >= 1. Received: {FLAGS.batch_size}")
    if not 0 < FLAGS.backbone_lr_multiplier <= 1:
        raise app.UsageError(f"--backbone_lr_multiplier must be in (0, 1]. Received: {FLAGS.backbone_lr_multiplier}")
    unknown = set(FLAGS.colour_permutation_answer_types) - {"yes/no", "number", "other"}
    if unknown:
        raise app.UsageError(f"--colour_permutation_answer_types takes yes/no, number and other. Received: "
                             f"{sorted(unknown)}")
    if not 1 <= FLAGS.colour_permutation_copies <= 5:
        raise app.UsageError(f"--colour_permutation_copies must be in 1..5 (the non-identity channel orders). "
                             f"Received: {FLAGS.colour_permutation_copies}")
    builtin_data = FLAGS.questions == "builtin"
    place_questions = FLAGS.place_questions == "on" or (FLAGS.place_questions == "auto" and builtin_data)
    occlusion_questions = FLAGS.occlusion_questions == "on" or (FLAGS.occlusion_questions == "auto" and builtin_data)
    front_pair_questions = FLAGS.front_pair_questions == "on" or (
        FLAGS.front_pair_questions == "auto" and builtin_data)
    grounding_weight = (1.0 if builtin_data else 0.0) if FLAGS.grounding_weight is None else FLAGS.grounding_weight
    fit_dense_labels = FLAGS.dense_labels == "on" or (FLAGS.dense_labels == "auto" and builtin_data)
    if not builtin_data and (place_questions or occlusion_questions or front_pair_questions or grounding_weight
                             or fit_dense_labels):
        raise app.UsageError("--place_questions, --occlusion_questions, --front_pair_questions, --dense_labels "
                             "and --grounding_weight need the built-in scenes (--questions="
                             "builtin): they read where each object is from the scenes themselves.")
    questions, annotations = FLAGS.questions, FLAGS.annotations
    image_dir, image_template = FLAGS.image_dir, FLAGS.image_template
    if questions == "builtin":
        builtin = ensure_builtin_vqa_data(FLAGS.builtin_dir or os.path.join(FLAGS.model_dir, "data"),
                                          FLAGS.builtin_train, FLAGS.builtin_heldout, image_size=64, seed=FLAGS.seed)
        questions, annotations = builtin["train"]["questions"], builtin["train"]["annotations"]
        image_dir = image_dir or builtin["image_dir"]
        if FLAGS["image_template"].using_default_value:  # the built-in files name their images themselves
            image_template = builtin["image_template"]
    if annotations is None:
        raise app.UsageError("--annotations is required with --questions (training needs the answers).")
    image_dir = image_dir or os.path.dirname(os.path.abspath(questions))
    data = read_vqa_v2(questions, annotations, image_dir=image_dir, image_template=image_template,
                       split=FLAGS.split, max_questions=FLAGS.max_questions)
    scene_generator = SceneGenerator(image_size=64, seed=FLAGS.seed) if builtin_data else None
    places_added = 0
    if place_questions:  # training-only, before the vocabulary: their answers are answers
        data["records"], places_added = add_place_questions(data["records"], scene_generator)
        print(f"Place questions ('where is the X?', --place_questions): {places_added}")
    occlusions_added = 0
    if occlusion_questions:
        data["records"], occlusions_added = add_occlusion_questions(data["records"], scene_generator)
        print(f"Occlusion questions ('is the X partly hidden?', --occlusion_questions): {occlusions_added}")
    front_pairs_added = 0
    if front_pair_questions:
        data["records"], front_pairs_added = add_front_pair_questions(data["records"], scene_generator)
        print(f"Front pair questions ('is the X in front of the Y?', --front_pair_questions): {front_pairs_added}")
    loaded = load_vqa_images(data["records"], FLAGS.image_size, skip_counter=data["skip_counter"])
    records = loaded["records"]
    vocabulary = build_answer_vocabulary([r["answers"] for r in records], FLAGS.num_answers)
    scores = soft_scores([r["answers"] for r in records], vocabulary)
    answer_types = vocabulary_answer_types([r["answers"] for r in records], [r["answer_type"] for r in records],
                                           vocabulary)
    question_prior = FLAGS.question_prior == "on" or (FLAGS.question_prior == "auto" and FLAGS.questions == "builtin")
    covered = float((scores.max(axis=1) > 0).mean())
    print(f"{len(records)} training questions on {len(loaded['images'])} images at {FLAGS.image_size}px; "
          f"{len(vocabulary)} answers (cover {100 * covered:.1f}% of the questions); "
          f"{data['skip_counter'].summary()}")
    colour_permutation = FLAGS.colour_permutation == "on" or (
        FLAGS.colour_permutation == "auto" and FLAGS.questions == "builtin")
    added = {"added_images": 0, "added_questions": 0}
    if colour_permutation:  # after the vocabulary and answer types: those are the real data's
        added = add_colour_permuted_copies(loaded["images"], loaded["image_index"], records,
                                           copies=FLAGS.colour_permutation_copies, seed=FLAGS.seed,
                                           answer_types=FLAGS.colour_permutation_answer_types)
        loaded = dict(loaded, images=added["images"], image_index=added["image_index"])
        records = added["records"]
        scores = soft_scores([r["answers"] for r in records], vocabulary)
        print(f"Colour-permuted copies: {added['added_images']} images, with their {added['added_questions']} "
              "colour-free questions (--colour_permutation)")
    elif FLAGS["colour_permutation_copies"].present:
        print(f"--colour_permutation_copies={FLAGS.colour_permutation_copies} has no effect: the colour-permuted "
              "copies are off for this data (--colour_permutation=on turns them on).")

    preset = FLAGS.preset
    fusion = dict(fusion_dim=FLAGS.fusion_dim, fusion_layers=FLAGS.fusion_layers, fusion_heads=FLAGS.fusion_heads,
                  image_token_stage=None if FLAGS.image_token_stage < 0 else FLAGS.image_token_stage,
                  image_position_embedding=FLAGS.image_position_embedding, image_scales=_image_scales(),
                  image_detail=FLAGS.image_detail, image_summary=FLAGS.image_summary)
    fusion["question_length"] = FLAGS.question_length
    # A pretrained fusion stack (--fusion_preset) or a FlorenceVQA preset to go on from (--preset): its settings
    # replace the flags left at their defaults, so that its weights fit.
    source = FLAGS.fusion_preset or (preset if fusion_weights.preset_task_class(preset) == "FlorenceVQA" else None)
    if source:
        pretrained = fusion_weights.fusion_settings(source)
        fusion.update({name: pretrained[name] for name in fusion
                       if name in pretrained and FLAGS[name].using_default_value})
        fusion["fusion_intermediate_dim"] = pretrained["fusion_intermediate_dim"]
        if FLAGS.fusion_preset and FLAGS["preset"].using_default_value:
            preset = FLAGS.fusion_preset
        if FLAGS.question_prior == "auto" and "question_prior" in pretrained:  # going on from a FlorenceVQA
            question_prior = pretrained["question_prior"]  # preset: its branch, so that its weights fit
        if FLAGS.dense_labels == "auto" and pretrained.get("dense_label_classes"):  # (likewise: its decoder,
            fusion.update(dense_label_classes=pretrained["dense_label_classes"],  # already fitted)
                          dense_label_channels=pretrained["dense_label_channels"],
                          dense_label_sub_cells=pretrained["dense_label_sub_cells"],
                          dense_label_upsamplings=pretrained["dense_label_upsamplings"])
            fit_dense_labels = False
    if fit_dense_labels:
        fusion.update(dense_label_classes=DENSE_OCCLUSION_CLASSES,
                      dense_label_upsamplings=FLAGS.dense_label_upsamplings)

    if fusion["image_token_stage"] == 0 and fusion["image_detail"]:  # stage 0 has no finer stage to fold in
        if not FLAGS["image_detail"].using_default_value:
            raise app.UsageError("--image_detail needs a stage before --image_token_stage; stage 0 has none.")
        fusion["image_detail"] = False
        print("Image tokens from stage 0: no finer stage to fold in (--image_detail off)")

    if fusion["question_length"] is None:  # padded positions are masked but computed: pack to what the data needs
        text_preprocessor = preset_registry.load_preprocessor(preset, FLAGS.image_size)
        fusion["question_length"] = fitting_sequence_length(
            text_preprocessor.tokenizer, sorted({r["question"] for r in records}), text_preprocessor.sequence_length)
        print(f"Questions packed to {fusion['question_length']} tokens (the longest training question, rounded "
              f"up to a multiple of 8; --question_length to choose)")
    else:  # a length chosen by the flag or by the preset gone on from: say what it cuts
        text_preprocessor = preset_registry.load_preprocessor(preset, FLAGS.image_size)
        cut = count_cut(text_preprocessor.tokenizer, [r["question"] for r in records], fusion["question_length"])
        if cut:
            print(f"Note: {cut} of {len(records)} training questions are longer than {fusion['question_length']} "
                  f"tokens and are cut to them")

    def model_fn(load_decoder=True):
        keras.utils.set_random_seed(FLAGS.seed)
        model = FlorenceVQA.from_preset(
            preset, answer_vocabulary=vocabulary, image_size=FLAGS.image_size, dropout=FLAGS.dropout,
            text_summary_dropout=FLAGS.text_summary_dropout, question_prior=question_prior,
            answer_types=answer_types, question_prior_floor=FLAGS.question_prior_floor,
            grounding_weight=grounding_weight, **fusion)
        if FLAGS.fusion_preset and preset != FLAGS.fusion_preset:  # (from_preset loads a pretrainer preset's own)
            fusion_weights.load_fusion_weights(model, FLAGS.fusion_preset)
        model.set_backbone_trainable(not FLAGS.freeze_backbone)  # (a preset of a frozen run stores it frozen)
        if fit_dense_labels and load_decoder:  # stage 0's result
            model.dense_label_decoder.set_weights(read_fitted_decoder(decoder_path, decoder_settings)[0])
        return model

    decoder_path = os.path.join(FLAGS.model_dir, "dense_label_decoder.npz")
    count = max(FLAGS.dense_label_scenes, FLAGS.builtin_train)
    decoder_settings = {"preset": preset, "image_size": FLAGS.image_size, "seed": FLAGS.seed, "scenes": count,
                        "steps": FLAGS.dense_label_steps, "upsamplings": FLAGS.dense_label_upsamplings,
                        "class_weights": DENSE_CLASS_WEIGHTS}
    dense_fit = {}
    stale = fit_dense_labels and read_fitted_decoder(decoder_path, decoder_settings)[1]
    if fit_dense_labels and not stale:  # a rerun: stage 0 is done (and deterministic)
        print(f"Stage 0 (--dense_labels): reusing the fitted decoder {decoder_path}")
    elif fit_dense_labels:
        checkpoints = os.path.join(FLAGS.model_dir, "checkpoints")
        if os.path.exists(decoder_path) and os.path.isdir(checkpoints) and os.listdir(checkpoints):
            raise app.UsageError(
                f"{FLAGS.model_dir} holds a run trained on another stage-0 decoder ({stale}; its settings come "
                f"from --preset, --image_size, --seed, --dense_label_scenes, --builtin_train, --dense_label_steps "
                f"and --dense_label_upsamplings): go on with that run's flags, or start a new --model_dir.")
        if os.path.exists(decoder_path):
            print(f"Stage 0 (--dense_labels): fitting again, {decoder_path} is not this run's: {stale}")
        dense_images, label_maps = builtin_occlusion_scenes(scene_generator, count, FLAGS.image_size)
        print(f"Stage 0 (--dense_labels): fitting the occlusion decoder on {count} training scenes, "
              f"{FLAGS.dense_label_steps} steps (frozen encoder)")
        stage_start = time.time()
        task = model_fn(load_decoder=False)
        dense_fit = fit_dense_label_decoder(task, dense_images, label_maps, FLAGS.dense_label_steps,
                                            class_weights=DENSE_CLASS_WEIGHTS, seed=FLAGS.seed)
        dense_fit["seconds"] = round(time.time() - stage_start, 1)
        print(f"Stage 0: loss {dense_fit['loss']:.4f}, object-pixel accuracy {100 * dense_fit['pixel_accuracy']:.1f}% "
              f"(last tenth of the steps), {dense_fit['seconds']:.0f} s")
        save_fitted_decoder(decoder_path, task.dense_label_decoder, decoder_settings)  # (complete or absent)
        del task, dense_images, label_maps

    token_ids = cache = extras = None
    grounding_counts = {}

    def make_dataset(request, task):
        nonlocal token_ids, cache, extras
        if token_ids is None:
            token_ids = np.concatenate([
                np.asarray(task.tokenize_questions([r["question"] for r in records[i:i + 4096]]))
                for i in range(0, len(records), 4096)])
        if grounding_weight and extras is None:
            grounding = builtin_grounding(records, scene_generator, task.image_token_grids,
                                          task.tokenize_questions, task.question_mask)
            extras = {"grounding_positions": grounding["positions"], "grounding_targets": grounding["targets"]}
            grounding_counts.update(grounded_questions=grounding["grounded_questions"], names=grounding["names"])
            print(f"Attention targets (--grounding_weight={grounding_weight:g}): {grounding['names']} named "
                  f"objects in {grounding['grounded_questions']} of {len(records)} questions")
        if FLAGS.freeze_backbone and FLAGS.cache_features:
            if cache is None:
                print(f"Encoding {len(loaded['images'])} images and the distinct questions once (frozen encoders)")
                cache = cache_vqa_features(task, loaded["images"], token_ids)
            return vqa_feature_dataset(cache["image_maps"], loaded["image_index"], cache["text_tokens"],
                                       cache["text_masks"], cache["question_index"], scores, request.batch_size,
                                       seed=request.seed * 1009 + request.input_pipeline_id, extras=extras)
        return vqa_dataset(loaded["images"], loaded["image_index"], token_ids, scores, request.batch_size,
                           task.preprocessor.image_converter.normalizer(),
                           seed=request.seed * 1009 + request.input_pipeline_id, extras=extras)

    settings = {name: FLAGS[name].value for name in (
        "preset", "image_size", "steps", "batch_size", "learning_rate", "warmup_steps", "weight_decay",
        "num_answers", "question_length", "fusion_dim", "fusion_layers", "fusion_heads", "dropout", "image_token_stage",
        "image_position_embedding", "image_scales", "image_detail", "image_summary", "text_summary_dropout",
        "question_prior_floor", "colour_permutation_answer_types", "colour_permutation_copies",
        "backbone_lr_multiplier",
        "freeze_backbone",
        "cache_features", "seed",
        "fusion_preset")}
    settings["question_length"] = fusion["question_length"]  # (the length used, also when chosen from the data)
    settings["image_detail"] = fusion["image_detail"]
    settings["question_prior"] = question_prior  # (what "auto" chose)
    settings["colour_permutation"] = colour_permutation
    settings["place_questions"] = place_questions  # (what "auto" chose)
    settings["occlusion_questions"] = occlusion_questions
    settings["front_pair_questions"] = front_pair_questions
    settings["grounding_weight"] = grounding_weight
    settings["dense_labels"] = fusion.get("dense_label_classes", 0) > 0  # (what "auto" chose)
    settings["dense_label_steps"] = FLAGS.dense_label_steps
    settings["dense_label_scenes"] = FLAGS.dense_label_scenes
    settings["dense_label_upsamplings"] = FLAGS.dense_label_upsamplings
    if source:
        settings.update(fusion, preset=preset)
    command = " ".join(["python", "recipes/train_vqa.py"] + sys.argv[1:])
    train_task(model_fn, make_dataset, task="vqa", command=command, settings=settings,
               metadata={"questions": str(questions), "annotations": str(annotations)},
               report=lambda: {"train_questions": len(records), "train_images": int(len(loaded["images"])),
                               "colour_permuted_images": added["added_images"],
                               "colour_permuted_questions": added["added_questions"],
                               "place_questions": places_added, "occlusion_questions": occlusions_added,
                               "front_pair_questions": front_pairs_added,
                               "dense_label_fit": dense_fit,
                               **grounding_counts,
                               "answers": len(vocabulary), "answer_coverage": covered,
                               "skipped": data["skip_counter"].count,
                               "skipped_reasons": dict(data["skip_counter"].reasons)},
               start_time=start, **{name: FLAGS[name].value for name in TRAINING_FLAGS},
               lr_multipliers=None if FLAGS.backbone_lr_multiplier == 1.0 else (
                   lambda task, variables: backbone_lr_multipliers(task, FLAGS.backbone_lr_multiplier, variables)))


if __name__ == "__main__":
    app.run(main)

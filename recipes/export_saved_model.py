r"""Exports a Florence preset as a TF Serving SavedModel (`BASE_DIR/VERSION/`, named signatures, warm-up).

    .venv/bin/python recipes/export_saved_model.py --preset=florence_tiny --output=/tmp/florence_serving \
        [--version=1] [--class_names=classes.txt] [--templates="a photo of a {}."] [--top_k=5] \
        [--stock_ops_only] [--rest_examples=/tmp/rest_examples.md]

    tensorflow_model_server --port=8500 --rest_api_port=8501 \
        --model_name=florence --model_base_path=/tmp/florence_serving --enable_model_warmup=true

A `FlorenceCLIP` preset: encode_image_bytes (= serving_default), encode_images, encode_texts (needs TF-Text
ops), encode_token_ids, classify; see docs/serving.md. `classify` is the zero-shot classifier of
`--class_names` (one per line; default: the 1,000 ImageNet classes) with text embeddings computed now, from
`--templates`: a template with `{}`, `imagenet7` / `imagenet80` (CLIP's sets; 7x / 80x the text passes), or a
file of templates.

A `FlorenceImageClassifier` preset (what `finetune_classification.py` writes to `<output_dir>/preset`): its own
`classify` (= serving_default) over the class names it was trained on (`--class_names` / `--templates` are not
used), plus, for the UniCL head, the four encode signatures of its backbone.

A `FlorenceDepthEstimator` preset (train_depth.py's `<model_dir>/preset`): `estimate_depth` (= serving_default;
image bytes -> float32 depth [H, W] in metres at the image's size); the class and template flags are not used.

A `FlorenceDetector` preset (train_detection.py's `<model_dir>/preset`): `detect` (= serving_default; image bytes
-> boxes [D, 4] xyxy pixels, scores, classes, class names, num_detections); the class and template flags are not
used (a zero-shot detector serves the class names it was saved with).

A `FlorenceVQA` preset (train_vqa.py's `<model_dir>/preset`): `answer` (= serving_default; image bytes + question
string -> answer string + score; the tokenizer runs in the graph, so it needs TF-Text ops).

A `FlorenceVideoClassifier` preset (train_video.py's `<model_dir>/preset`): `classify_video` (= serving_default;
uint8 clips [B, T, H, W, 3] -> probabilities and top-k classes) and `encode_video` (-> unit-norm embeddings).

`--stock_ops_only` leaves out encode_texts so the whole SavedModel loads on a TensorFlow / TF Serving build
without TF-Text. Tiny mode (the tests): `--preset=<directory of a tiny test preset> --class_names=<small file>`.
"""

import os
import sys
import time

from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", None, "Preset name (florence_tiny ...), preset directory or handle: a "
                    "FlorenceCLIP or a FlorenceImageClassifier (e.g. finetune_classification.py's output).")
flags.DEFINE_string("output", None, "Model base directory; the export goes to OUTPUT/VERSION.")
flags.DEFINE_integer("version", None, "Version directory number; default: one more than the largest there.")
flags.DEFINE_string("class_names", None, "Text file, one class name per line; default: ImageNet's 1,000.")
flags.DEFINE_string("templates", "a photo of a {}.", "A template with {}, imagenet7, imagenet80, or a file.")
flags.DEFINE_integer("top_k", 5, "Classes returned by `classify`.")
flags.DEFINE_string("model_name", "florence", "Name the server serves the model under (for warm-up requests).")
flags.DEFINE_boolean("stock_ops_only", False, "Leave out encode_texts (TF-Text ops).")
flags.DEFINE_boolean("overwrite", False, "Replace an existing OUTPUT/VERSION.")
flags.DEFINE_string("rest_examples", None, "Write REST request/response examples (markdown) here.")


def read_class_names(path):
    """Class names from a UTF-8 file, one a line (blank lines and lines starting with `#` skipped)."""
    with open(path, encoding="utf-8") as file:
        names = [line.strip() for line in file if line.strip() and not line.lstrip().startswith("#")]
    if not names:
        raise ValueError(f"{path}: no class names found.")
    return names


def resolve_templates(spec):
    """A single template (contains `{}`), a named set, or a file -> list of templates."""
    from florence_keras.evaluation import load_templates

    if "{}" in spec and not os.path.isfile(spec):
        return [spec]
    return load_templates(spec)


def directory_size(path):
    """Total bytes of the files under `path`."""
    return sum(
        os.path.getsize(os.path.join(folder, name)) for folder, _, names in os.walk(path) for name in names
    )


def preset_task_name(preset):
    """The Task class name a preset directory was saved from (`task.json`), or "FlorenceCLIP" for any other preset
    (architecture presets, directories without a Task config)."""
    import json

    from florence_keras.models import preset_registry

    path = preset_registry.resolve(preset).path
    task_file = os.path.join(path, "task.json") if path and os.path.isdir(path) else None
    if task_file is None or not os.path.isfile(task_file):
        return "FlorenceCLIP"
    try:
        with open(task_file, encoding="utf-8") as file:
            return str(json.load(file).get("class_name", "FlorenceCLIP"))
    except (OSError, ValueError, AttributeError):
        return "FlorenceCLIP"  # a damaged task.json: from_preset names the file


def export_clip_saved_model(preset, output, version=None, class_names=None, templates="a photo of a {}.",
                            top_k=5, model_name="florence", stock_ops_only=False, overwrite=False,
                            rest_examples=None):
    """Loads `preset` (a FlorenceCLIP or a FlorenceImageClassifier), exports it, prints a summary.

    Returns:
        dict: `export_dir`, `seconds`, `bytes`, `signatures`, `task` (the Task class name).
    """
    from florence_keras import export
    from florence_keras.models import FlorenceCLIP
    from florence_keras.models import FlorenceImageClassifier

    start = time.perf_counter()
    task_name = preset_task_name(preset)
    if task_name == "FlorenceCaptioner":
        from florence_keras.export.caption_signature import CAPTION_SERVING_DEFAULT
        from florence_keras.export.caption_signature import caption_signature
        from florence_keras.models.florence_captioner import FlorenceCaptioner

        captioner = FlorenceCaptioner.from_preset(preset)
        loaded = time.perf_counter()
        signatures, serving_default = [caption_signature(captioner)], CAPTION_SERVING_DEFAULT
    elif task_name == "FlorenceImageClassifier":
        classifier = FlorenceImageClassifier.from_preset(preset)
        loaded = time.perf_counter()
        print(f"Serving the fine-tuned {classifier.head_type}-head classifier of {classifier.num_classes} classes.")
        signatures = export.image_classifier_signatures(classifier, top_k=top_k)
        serving_default = export.CLASSIFIER_SERVING_DEFAULT
    elif task_name == "FlorenceDepthEstimator":
        from florence_keras.models import FlorenceDepthEstimator

        estimator = FlorenceDepthEstimator.from_preset(preset)
        loaded = time.perf_counter()
        print(f"Serving the depth estimator ({estimator.image_size}px): estimate_depth.")
        signatures = [export.estimate_depth_signature(estimator)]
        serving_default = export.DEPTH_SERVING_DEFAULT
    elif task_name == "FlorenceVideoClassifier":
        from florence_keras.models.florence_video_classifier import FlorenceVideoClassifier

        video = FlorenceVideoClassifier.from_preset(preset)
        loaded = time.perf_counter()
        print(f"Serving the video classifier ({video.num_frames}x{video.image_size}px): classify_video, "
              "encode_video.")
        signatures = export.video_signatures(video, top_k=top_k)
        serving_default = export.VIDEO_SERVING_DEFAULT
    elif task_name == "FlorenceDetector":
        from florence_keras.models import FlorenceDetector

        detector = FlorenceDetector.from_preset(preset)
        loaded = time.perf_counter()
        print(f"Serving the detector ({detector.image_size}px, {len(detector.class_names)} classes): detect.")
        signatures = [export.detect_signature(detector)]
        serving_default = export.DETECT_SERVING_DEFAULT
    elif task_name == "FlorenceVQA":
        from florence_keras.models import FlorenceVQA

        vqa = FlorenceVQA.from_preset(preset)
        loaded = time.perf_counter()
        print(f"Serving the VQA model ({vqa.image_size}px, {len(vqa.answer_vocabulary)} answers): answer.")
        signatures = [export.answer_signature(vqa)]
        serving_default = export.ANSWER_SERVING_DEFAULT
    else:
        from florence_keras.evaluation import imagenet_class_names

        clip = FlorenceCLIP.from_preset(preset)
        loaded = time.perf_counter()
        names = read_class_names(class_names) if class_names else imagenet_class_names()
        template_list = resolve_templates(templates)
        print(f"Embedding {len(names)} classes x {len(template_list)} templates for `classify`.")
        signatures = export.clip_signatures(clip, names, template_list, top_k=top_k)
        serving_default = export.CLIP_SERVING_DEFAULT
    exporter = export.SavedModelExporter(
        signatures, serving_default=serving_default, model_name=model_name,
        exclude_tensorflow_text=stock_ops_only,
    )
    export_dir = exporter.export(output, version=version, overwrite=overwrite)
    seconds = time.perf_counter() - loaded
    size = directory_size(export_dir)
    print(f"\nExported {export_dir} in {seconds:.1f} s (model load {loaded - start:.1f} s), "
          f"{size / 2**20:.1f} MiB. Signatures (serving_default = {exporter.serving_default}):")
    for signature in exporter.signatures:
        inputs = ", ".join(f"{k}: {v.dtype.name}{v.shape}" for k, v in signature.input_specs.items())
        note = "  [needs TF-Text ops]" if signature.requires_tensorflow_text else ""
        print(f"  {signature.name}({inputs}) -- {signature.description}{note}")
    if rest_examples:
        with open(rest_examples, "w", encoding="utf-8") as file:
            file.write(export.rest_examples_markdown(export_dir, model_name=model_name))
        print(f"REST examples: {rest_examples}")
    return {"export_dir": export_dir, "seconds": seconds, "bytes": size,
            "signatures": exporter.signature_names, "task": task_name}


def main(argv):
    """`app.run` entry point; tests call `main(["prog", "--preset=...", ...])`."""
    if any(arg.startswith("-") for arg in argv[1:]):  # Flags given directly (tests), not via app.run.
        FLAGS.unparse_flags()
        argv = FLAGS(argv)
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    for name in ("preset", "output"):
        if not getattr(FLAGS, name):
            raise app.UsageError(f"--{name} is required.")
    export_clip_saved_model(
        preset=FLAGS.preset, output=FLAGS.output, version=FLAGS.version, class_names=FLAGS.class_names,
        templates=FLAGS.templates, top_k=FLAGS.top_k, model_name=FLAGS.model_name,
        stock_ops_only=FLAGS.stock_ops_only, overwrite=FLAGS.overwrite, rest_examples=FLAGS.rest_examples,
    )


if __name__ == "__main__":
    app.run(main)

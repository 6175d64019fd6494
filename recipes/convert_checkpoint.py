r"""Convert a public checkpoint into a florence_keras preset directory.

    python recipes/convert_checkpoint.py --source=transformers \
        --input=/path/to/save_pretrained_dir --output=/path/to/preset

Supported transformers models: `SwinModel` (-> CoSwinBackbone in linear/Swin
mode), `CLIPTextModel` (-> FlorenceTextEncoder), and `VisionTextDualEncoderModel`
with a Swin vision model and a CLIP text model (UniCL's architecture ->
FlorenceCLIP with the CLIP tokenizer and an image converter whose mean/std come
from the checkpoint's `preprocessor_config.json` when present).
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging


def convert(source, input_dir, output_dir, overwrite=False):
    """Converts `input_dir` and writes a preset to `output_dir`; returns the model."""
    from florence_keras.converters.transformers_converter import convert_checkpoint
    from florence_keras.models import FlorenceBackbone
    from florence_keras.models import FlorenceCLIP
    from florence_keras.models import FlorenceCLIPPreprocessor
    from florence_keras.models import FlorenceImageConverter
    from florence_keras.models import FlorenceTokenizer
    from florence_keras.models.florence_image_converter import IMAGENET_MEAN
    from florence_keras.models.florence_image_converter import IMAGENET_STD

    if source != "transformers":
        raise ValueError(f"Unsupported --source={source!r}; supported: 'transformers'.")
    if os.path.exists(output_dir) and os.listdir(output_dir) and not overwrite:
        raise ValueError(f"--output={output_dir!r} exists and is not empty (pass --overwrite).")
    model = convert_checkpoint(input_dir)
    os.makedirs(output_dir, exist_ok=True)
    if isinstance(model, FlorenceBackbone):
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        processor = os.path.join(input_dir, "preprocessor_config.json")
        if os.path.exists(processor):
            with open(processor, encoding="utf-8") as f:
                config = json.load(f)
            mean = tuple(config.get("image_mean", mean))
            std = tuple(config.get("image_std", std))
        preprocessor = FlorenceCLIPPreprocessor(
            FlorenceTokenizer(),
            FlorenceImageConverter(image_size=model.image_size, mean=mean, std=std),
            sequence_length=model.sequence_length,
        )
        task = FlorenceCLIP(backbone=model, preprocessor=preprocessor)
        task.save_to_preset(output_dir)
        return task
    model.save_to_preset(output_dir)
    return model


FLAGS = flags.FLAGS


def main(argv):
    del argv
    model = convert(FLAGS.source, FLAGS.input, FLAGS.output, FLAGS.overwrite)
    logging.info("Wrote %s (%d parameters) to %s", type(model).__name__, model.count_params(), FLAGS.output)
    print(f"Wrote {type(model).__name__} ({model.count_params():,} parameters) to {FLAGS.output}")


if __name__ == "__main__":
    flags.DEFINE_enum("source", "transformers", ["transformers"], "Checkpoint family.")
    flags.DEFINE_string("input", None, "Checkpoint directory (save_pretrained layout).")
    flags.DEFINE_string("output", None, "Preset directory to write.")
    flags.DEFINE_bool("overwrite", False, "Allow writing into a non-empty --output.")
    flags.mark_flags_as_required(["input", "output"])
    sys.exit(app.run(main))

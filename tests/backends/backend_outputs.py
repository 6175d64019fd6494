"""Computes the model stack's outputs under whatever Keras backend this process runs (`KERAS_BACKEND`).

Run as a script by `jax_parity_test.py`, once with `KERAS_BACKEND=tensorflow` and once with `jax` (the backend is
process-wide, so each runs in its own process). The TensorFlow run saves the models (a tiny `FlorenceCLIP`
preset, a Swin-style CoSwin and a GELU text encoder as `.keras` files) and the JAX run loads the same files, so both
use the same weights and inputs; the test compares the two `.npz` files.

    KERAS_BACKEND=jax python tests/backends/backend_outputs.py --workdir=DIR --out=DIR/jax.npz

Under JAX every eager op is compiled on first use, so model calls go through one compiled function each
(`_forward`): the same code path Keras's `predict` / `fit` take (a jitted stateless call).
"""

import argparse
import os
import sys

import keras
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)  # run as a script: import florence_keras and the test fixtures from this checkout

from florence_keras.models.coswin_backbone import CoSwinBackbone  # noqa: E402
from florence_keras.models.florence_clip import FlorenceCLIP  # noqa: E402
from florence_keras.models.florence_image_classifier import FlorenceImageClassifier  # noqa: E402
from florence_keras.models.florence_text_encoder import FlorenceTextEncoder  # noqa: E402
from tests.model_fixtures import TINY_IMAGE_SIZE  # noqa: E402
from tests.model_fixtures import save_tiny_preset  # noqa: E402

TEXTS = ["a red circle", "two blue squares on the left of a green triangle"]
CLASS_NAMES = ["red circle", "blue square", "green triangle"]
FIT_TEXTS = ["a red circle", "a blue square", "a green triangle", "a red circle"]
FIT_LABELS = [0, 1, 2, 0]  # the repeated text is a positive pair (UniCL)
FIT_LEARNING_RATE = 0.2


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _forward(model, inputs, training=False):
    """`model(inputs)` as numpy; under JAX one jitted stateless call (Keras's own predict/fit path)."""
    if keras.backend.backend() != "jax":
        return keras.tree.map_structure(_np, model(inputs, training=training))
    import jax

    def call(trainable, non_trainable, x):
        outputs = model.stateless_call(trainable, non_trainable, x, training=training)[0]
        return dict(outputs) if isinstance(outputs, dict) else outputs  # a plain dict is a JAX pytree

    values = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])
    return keras.tree.map_structure(_np, jax.jit(call)(*values, inputs))


def _saved_models(workdir):
    """The tiny FlorenceCLIP preset, a zero-shot FlorenceImageClassifier preset on it, a Swin-style CoSwin (linear patches, PatchMerging, shifted windows, an image
    that needs padding, DropPath > 0) and a GELU text encoder. The first (TensorFlow) run saves them."""
    coswin_path = os.path.join(workdir, "swin_style_coswin.keras")
    text_path = os.path.join(workdir, "gelu_text_encoder.keras")
    preset = os.path.join(workdir, "tiny_preset")
    if not os.path.exists(coswin_path):
        save_tiny_preset(preset)
        keras.utils.set_random_seed(1)
        # Widths as in the tiny preset: under JAX, variables of shapes already seen initialise without a new compile.
        CoSwinBackbone(embed_dim=16, depths=[2, 2], num_heads=[1, 2], window_size=3, patch_embedding="linear",
                       drop_path_rate=0.3, image_shape=(30, 26, 3)).save(coswin_path)
        FlorenceTextEncoder(hidden_dim=32, num_layers=2, num_heads=2, vocabulary_size=50, max_sequence_length=12,
                            activation="gelu", eos_token_id=49).save(text_path)
    clip = FlorenceCLIP.from_preset(preset)
    classifier_preset = os.path.join(workdir, "classifier_preset")
    if not os.path.exists(classifier_preset):  # the zero-shot classifier: class embeddings from the text tower
        FlorenceImageClassifier.from_clip(clip, CLASS_NAMES).save_to_preset(classifier_preset)
    classifier = FlorenceImageClassifier.from_preset(classifier_preset)
    return clip, classifier, keras.saving.load_model(coswin_path), keras.saving.load_model(text_path)


class _BatchLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def _fit(clip, out):
    """`FlorenceCLIP.fit` on one device with the Task's loss (UniCL): per-batch losses and the final weights.

    Plain SGD: the update is linear in the gradient, so equal weights after training mean equal gradients. (Adam
    divides each gradient by its own magnitude, so float32 noise in a near-zero gradient entry becomes a
    whole learning-rate step of either sign; its weights agree only to ~the learning rate.)
    """
    rng = np.random.default_rng(1)
    size = TINY_IMAGE_SIZE
    images = rng.integers(0, 256, size=(len(FIT_TEXTS) * 2, size + 8, size, 3)).astype("uint8")
    x = {"images": images, "texts": np.array(FIT_TEXTS * 2)}
    labels = np.array(FIT_LABELS * 2, "int64")
    clip.compile(optimizer=keras.optimizers.SGD(FIT_LEARNING_RATE))
    batch_losses = _BatchLosses()
    clip.fit(x, labels, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[batch_losses])
    out["fit/batch_mean_loss"] = np.array(batch_losses.losses, "float32")
    for variable in clip.trainable_weights:
        out[f"fit/weights/{variable.path}"] = _np(variable)


def compute(workdir):
    out = {}
    rng = np.random.default_rng(0)
    clip, classifier, swin_style, gelu_text = _saved_models(workdir)
    backbone = clip.backbone
    size = TINY_IMAGE_SIZE
    images = rng.normal(size=(2, size, size, 3)).astype("float32")
    token_ids = _np(clip.preprocessor.tokenize(TEXTS))
    out["tokenizer/token_ids"] = token_ids

    coswin = backbone.image_encoder
    for key, value in _forward(coswin, images).items():
        out[f"coswin/{key}"] = value
    for key, value in _forward(keras.Model(coswin.inputs, coswin.pyramid_outputs), images).items():
        out[f"coswin/pyramid/{key}"] = value

    text = backbone.text_encoder
    for key, value in _forward(text, token_ids).items():
        out[f"text_encoder/{key}"] = value
    out["text_encoder/pooled_output_first_12_ids"] = _forward(text, token_ids[:, :12])["pooled_output"]

    for key, value in _forward(backbone, {"images": images, "token_ids": token_ids}).items():
        out[f"backbone/{key}"] = value

    raw_images = rng.integers(0, 256, size=(2, size + 10, size + 20, 3)).astype("uint8")
    predicted = clip.predict({"images": raw_images, "texts": np.array(TEXTS)}, batch_size=1, verbose=0)
    for key, value in predicted.items():
        out[f"task/predict/{key}"] = _np(value)
    out["classifier/predict_logits"] = _np(classifier.predict(raw_images, batch_size=1, verbose=0))

    swin_images = rng.normal(size=(2, 30, 26, 3)).astype("float32")
    for key, value in _forward(swin_style, swin_images).items():
        out[f"swin_style_coswin/{key}"] = value
    dropped = _forward(swin_style, swin_images, training=True)["pooled_output"]
    # DropPath is random (each backend has its own generator): only that it runs and drops is comparable.
    out["swin_style_coswin/drop_path_changes_training_output"] = np.array(
        np.abs(dropped - out["swin_style_coswin/pooled_output"]).max() > 1e-3)
    gelu_ids = np.array([[1, 7, 3, 49, 49, 49, 49, 49], [4, 5, 6, 8, 9, 10, 11, 49]], "int32")
    for key, value in _forward(gelu_text, gelu_ids).items():
        out[f"gelu_text_encoder/{key}"] = value

    _fit(clip, out)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = compute(args.workdir)
    out["backend"] = np.array(keras.backend.backend())
    np.savez(args.out, **out)


if __name__ == "__main__":
    main()

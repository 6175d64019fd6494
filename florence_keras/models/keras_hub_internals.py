"""The only place where florence_keras imports keras-hub internals (`keras_hub.src`).

keras-hub 0.32 has no public name for the two things below; everything else we
use from keras-hub comes from its public API (`keras_hub.models`,
`keras_hub.layers`, `keras_hub.tokenizers`). When keras-hub moves or exports
them, this module is the one file to change (the version is pinned in setup.py;
tests/models/keras_hub_internals_test.py checks that both still behave as we
rely on).

* `CLIPEncoderLayer` — the CLIP transformer block (pre-LayerNorm, causal
  multi-head attention, 4x MLP with quick-GELU), exactly CLIP's text block.
  `keras_hub.models.CLIPTextEncoder` (public) is built from it but only exposes
  whole encoders, not the block. We reuse it rather than rewrite it: the weight
  layout of our presets and the transformers converter
  (`converters/transformers_converter.py`) follow its sub-layer names
  (`layer_norm_1`, `attention`, `dense_1`, ...), so a rewrite would have to copy them.
* `preprocessing_function` — the decorator keras-hub puts on its own
  tokenizers and preprocessors: it runs the wrapped TensorFlow code on the CPU,
  converts backend tensors (JAX, NumPy) to TensorFlow on the way in and back on
  the way out, and leaves tensors alone inside `tf.data` / `tf.function`. Our
  tokenizer and preprocessor are TensorFlow code (string ops), and this is what
  makes them callable under every Keras backend the way keras-hub's are.
"""

from keras_hub.src.models.clip.clip_layers import CLIPEncoderLayer  # noqa: F401
from keras_hub.src.utils.tensor_utils import preprocessing_function  # noqa: F401

__all__ = ["CLIPEncoderLayer", "preprocessing_function"]

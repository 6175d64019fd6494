"""The florence_keras (TensorFlow) side of every benchmark.

Each factory takes a spec dict and returns an object with `step()` (one timed unit of work, which
returns only when the work is done) and `info()` (JSON-able facts: outputs for the parity check,
FLOPs, versions). Every compiled function is a `tf.function` with fixed input shapes, traced
during the worker's warm-up, never inside a timed step.
"""

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import dcn_v2_benchmark
from benchmarks import detector_inference_benchmark
from benchmarks import flop_counter
from benchmarks.inputs import swin_inputs
from benchmarks.inputs import text_inputs


def _versions():
    return {"tensorflow": tf.__version__, "keras": keras.__version__,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "devices": [d.name for d in tf.config.list_logical_devices()]}


def _sync(device_value):
    """Blocks until `device_value` (a tensor, or a variable read) is computed (GPU runs async)."""
    return np.asarray(device_value)


def _quick_config(image_size):
    """The `--quick` model: a few-thousand-weight Florence (the real CLIP vocabulary) for smoke runs."""
    from florence_keras.models import presets

    return {
        "image_encoder": {"embed_dim": 16, "depths": [1, 2], "num_heads": [1, 2], "window_size": 2,
                          "drop_path_rate": 0.0, "patch_embedding": "conv",
                          "image_shape": (image_size, image_size, 3)},
        "text_encoder": {"hidden_dim": 32, "num_layers": 2, "num_heads": 2,
                         "vocabulary_size": presets.CLIP_VOCABULARY_SIZE,
                         "max_sequence_length": presets.CONTEXT_LENGTH},
        "projection_dim": 16,
    }


def resolve_config(config):
    """A Florence config dict, or a reference `{"preset": name, "image_size": n}` to one
    (`"tiny_test"` is the `--quick` model, `_quick_config`)."""
    if "preset" not in config:
        return config
    from florence_keras.models import presets

    if config["preset"] == "tiny_test":
        return _quick_config(image_size=config.get("image_size", 32))
    return presets.architecture_config(config["preset"], image_size=config.get("image_size", 224))


class _ModelCase:
    """Forward or forward + backward of `mean(pooled ** 2)` through one backbone."""

    def __init__(self, model, inputs, train, flops_forward, extra_info=None):
        self.model = model
        self.inputs = tf.constant(inputs)
        self.train = train
        self.flops_forward = flops_forward
        self.extra_info = extra_info or {}
        forward = tf.function(lambda x: model(x, training=False)["pooled_output"])
        self.output = forward(self.inputs).numpy()
        if train:
            @tf.function
            def step(x):
                with tf.GradientTape() as tape:
                    pooled = model(x, training=True)["pooled_output"]
                    loss = tf.reduce_mean(tf.square(tf.cast(pooled, tf.float32)))
                return loss, tape.gradient(loss, model.trainable_variables)

            self._step = step
        else:
            self._step = forward

    def step(self):
        out = self._step(self.inputs)
        _sync(out[0] if self.train else out)

    def info(self):
        per_step = self.flops_forward * len(self.inputs) * (3 if self.train else 1)
        info = {"output": self.output.tolist(), "flops_per_step": per_step,
                "params": int(self.model.count_params()), **_versions()}
        info.update(self.extra_info)
        return info


def make_swin(spec, cases):
    """CoSwin from the torch side's saved `SwinModel` (`spec["model_dir"]`).

    `patch_embedding="linear"` converts the checkpoint (exact Swin); `"conv"` builds the same
    config with CoSwin's convolutional embeddings (random init: no Swin weights fit it).
    """
    from florence_keras.converters.transformers_converter import convert_checkpoint
    from florence_keras.converters.transformers_converter import swin_config_to_kwargs
    from florence_keras.models.coswin_backbone import CoSwinBackbone

    with open(os.path.join(spec["model_dir"], "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    kwargs = swin_config_to_kwargs(config)
    if spec.get("patch_embedding", "linear") == "linear":
        model = convert_checkpoint(spec["model_dir"])
    else:
        keras.utils.set_random_seed(0)
        model = CoSwinBackbone(**dict(kwargs, patch_embedding=spec["patch_embedding"]))
        kwargs["patch_embedding"] = spec["patch_embedding"]
    flops = flop_counter.swin_flops(**kwargs)
    images = swin_inputs(spec["batch"], kwargs["image_shape"][0])
    return _ModelCase(model, images, spec["train"], flops["total"],
                      {"flops_forward_per_image": flops})


def make_clip_text(spec, cases):
    """`FlorenceTextEncoder` converted from the torch side's saved `CLIPTextModel`."""
    from florence_keras.converters.transformers_converter import convert_checkpoint

    model = convert_checkpoint(spec["model_dir"])
    flops = flop_counter.text_encoder_flops(
        hidden_dim=model.hidden_dim, num_layers=model.num_layers,
        intermediate_dim=model.intermediate_dim, max_sequence_length=model.max_sequence_length)
    ids = text_inputs(spec["batch"], model.max_sequence_length, model.eos_token_id)
    return _ModelCase(model, ids, spec["train"], flops["total"],
                      {"flops_forward_per_text": flops})


class FlorenceStep:
    """One UniCL training step of a FlorenceBackbone with AdamW, as `UniCLTrainer` runs it.

    The step is written here with the trainer's own pieces — `full_batch_gradients` (forward,
    UniCL loss, backward), dense gradients, `make_optimizer`'s AdamW — because `UniCLTrainer` owns
    its data loop; the per-step work is the same. `spec["jit_compile"]` compiles the step with XLA.
    """

    def __init__(self, spec):
        from florence_keras.models import presets
        from florence_keras.training.gradient_cache import full_batch_gradients
        from florence_keras.models.florence_clip import FlorenceCLIP
        from florence_keras.training.optimizer_factory import AdamWConfig
        from florence_keras.training.optimizer_factory import make_optimizer

        self.dtype = spec.get("dtype", "float32")
        self.batch = spec["batch"]
        config = resolve_config(spec["config"])
        keras.utils.set_random_seed(0)
        model = presets.build_backbone(config, dtype=self.dtype)
        task = FlorenceCLIP(model)  # the Task owns the UniCL loss the trainer drives
        optimizer = make_optimizer(model.trainable_variables, AdamWConfig(learning_rate=1e-4),
                                   total_steps=10**6, precision=self.dtype)
        size = config["image_encoder"]["image_shape"][0]
        text = config["text_encoder"]
        vocabulary = text.get("vocabulary_size", 49408)
        self.data = {
            "images": tf.constant(swin_inputs(self.batch, size)),
            "token_ids": tf.constant(text_inputs(self.batch, text.get("max_sequence_length", 77),
                                                 vocabulary - 1)),
            "labels": tf.range(self.batch, dtype=tf.int64),
        }
        variables = model.trainable_variables
        self.jit_compile = bool(spec.get("jit_compile", False))

        @tf.function(jit_compile=self.jit_compile)
        def step(batch):
            loss, grads = full_batch_gradients(task, batch)
            grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                     for g, v in zip(grads, variables)]
            optimizer.apply_gradients(zip(grads, variables))
            return loss

        self._step = step
        self.model = model
        flops = flop_counter.florence_flops(config)
        self.flops_per_step = (flops["train_step"] * self.batch
                               + flop_counter.unicl_loss_flops(self.batch, config["projection_dim"]))
        self.flops = flops

    def step(self):
        _sync(self._step(self.data))
        _sync(self.model.log_logit_scale)  # the optimizer's update has run

    def info(self):
        return {"flops_per_step": self.flops_per_step, "items_per_step": self.batch,
                "flops_forward_per_pair": self.flops, "dtype": self.dtype, "jit_compile": self.jit_compile,
                "params": int(self.model.count_params()), **_versions()}


def make_florence_step(spec, cases):
    return FlorenceStep(spec)


class MatmulPeak:
    """`n x n` matmul in `dtype`: the machine's peak, measured between the model runs."""

    def __init__(self, spec):
        self.n = spec["n"]
        self.dtype = spec.get("dtype", "float32")
        rng = np.random.RandomState(0)
        self.a = tf.cast(tf.constant(rng.randn(self.n, self.n).astype("float32")), self.dtype)
        self.b = tf.cast(tf.constant(rng.randn(self.n, self.n).astype("float32")), self.dtype)
        # Reduce to a scalar so that copying the result back is not timed.
        self._step = tf.function(lambda a, b: tf.reduce_sum(tf.cast(tf.matmul(a, b)[:1, :1], "float32")))

    def step(self):
        _sync(self._step(self.a, self.b))

    def info(self):
        return {"flops_per_step": 2 * self.n**3, "dtype": self.dtype, **_versions()}


def make_matmul(spec, cases):
    return MatmulPeak(spec)


class InputPipeline:
    """Decode + random-resized-crop + flip + batch from files: one step reads `images` images.

    The files are the built-in procedural scenes (`write_builtin_dataset`: JPEG files with a CSV
    index, and the same JPEGs in TFRecord shards), written once at `spec["source"]`. With
    `tokenize` the texts are tokenised too, so a batch is exactly what the training step eats.

    The iterator is rebuilt at every step (prefetch buffers that fill while the pipeline waits
    would otherwise fake huge rates, PERF.md); its first batch (start-up) is not timed.
    """

    def __init__(self, spec):
        from florence_keras.data import load_image_text_dataset
        from florence_keras.data import write_builtin_dataset

        source = spec["source"]
        if not os.path.exists(os.path.join(source["root"], "train.csv")):
            write_builtin_dataset(source["root"], num_train=source["num_images"], num_heldout=0,
                                  image_size=source["image_size"], formats=("csv", "tfrecord"))
        paths = {"csv": os.path.join(source["root"], "train.csv"),
                 "tfrecord": os.path.join(source["root"], "tfrecord", "train-*.tfrecord")}
        spec = dict(spec, paths=paths[spec["data_format"]])
        self.spec = spec
        self.images = spec["images"]
        self._load = load_image_text_dataset
        self.tokenize = None
        if spec.get("tokenize"):
            from florence_keras.models.florence_clip_preprocessor import FlorenceCLIPPreprocessor
            from florence_keras.models.florence_tokenizer import FlorenceTokenizer

            self.tokenize = FlorenceCLIPPreprocessor(FlorenceTokenizer()).tokenize

        self.dataset = self._dataset()

    def _dataset(self):
        spec = self.spec
        dataset = self._load(spec["paths"], spec["data_format"], image_size=spec["image_size"],
                             training=True, seed=None, log_skips_each_epoch=False)
        dataset = dataset.repeat().batch(spec["batch"], drop_remainder=True)
        if self.tokenize is not None:
            tokenize = self.tokenize
            dataset = dataset.map(
                lambda x: {"images": x["images"], "token_ids": tokenize(x["texts"]),
                           "labels": x["labels"]},
                num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.prefetch(tf.data.AUTOTUNE).take(self.images // spec["batch"])

    def step(self):
        """Reads one pass; returns the seconds spent on all batches but the first."""
        # A new iterator each step: empty buffers. The first batch pays the start-up (threads,
        # shuffle buffer) and is not timed; the rest measure the steady rate.
        iterator = iter(self.dataset)
        _sync(next(iterator)["images"][0, 0, 0, 0])
        start = time.perf_counter()
        for batch in iterator:
            _sync(batch["images"][0, 0, 0, 0])
        return time.perf_counter() - start

    def info(self):
        return {"items_per_step": (self.images // self.spec["batch"] - 1) * self.spec["batch"],
                "data_format": self.spec["data_format"], **_versions()}


def make_input_pipeline(spec, cases):
    return InputPipeline(spec)


CASES = {
    "swin": make_swin,
    "clip_text": make_clip_text,
    "florence_step": make_florence_step,
    "matmul": make_matmul,
    "input_pipeline": make_input_pipeline,
    **dcn_v2_benchmark.CASES,
    **detector_inference_benchmark.CASES,
}

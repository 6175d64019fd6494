"""`ExportSignature`: one named SavedModel signature (function, input specs, warm-up example)."""

import re

import numpy as np
import tensorflow as tf

_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ExportSignature:
    """A named serving signature: named input tensors -> a dict of named output tensors.

    A task model contributes a list of these (see `clip_signatures`); a
    `SavedModelExporter` turns any list of them into one SavedModel with one
    warm-up request each. Detection, VQA or video models add their own
    signatures the same way, without touching the exporter.

    Args:
        name: the signature name clients put in `signature_name` (letters,
            digits and `_`, starting with a letter; not `"serving_default"`,
            which the exporter sets as an alias).
        function: callable taking the inputs as keyword tensors and returning
            a dict `{output_name: tensor}` with a leading batch axis.
        input_specs: dict `{input_name: tf.TensorSpec}` (the spec's own name is
            replaced by the key). Order is kept.
        example_inputs: dict `{input_name: numpy array}` compatible with
            `input_specs`; written as this signature's warm-up request and used
            for the REST examples in the docs.
        resources: dict `{name: trackable}` of everything `function` reads
            (Keras models, variables, lookup tables); the exporter attaches
            them to the SavedModel so their state is saved. Defaults to none.
        requires_tensorflow_text: bool, whether the graph uses TF-Text ops (a
            server without them fails this signature, and loading in Python
            needs `import tensorflow_text`). Defaults to `False`.
        description: one line for humans (docs, `--help`).

    Example:
    >>> sig = ExportSignature(
    ...     "double", lambda x: {"y": 2.0 * x},
    ...     {"x": tf.TensorSpec([None], tf.float32)},
    ...     {"x": np.array([1.0, 2.0], np.float32)})
    >>> sig.concrete_function()(x=tf.constant([3.0]))["y"].numpy().tolist()
    [6.0]
    """

    def __init__(
        self,
        name,
        function,
        input_specs,
        example_inputs,
        resources=None,
        requires_tensorflow_text=False,
        description="",
    ):
        if not isinstance(name, str) or not _NAME_PATTERN.match(name) or name == "serving_default":
            raise ValueError(
                "`name` must be letters, digits and '_' starting with a letter, and not "
                f"'serving_default'. Received: name={name!r}"
            )
        if not callable(function):
            raise ValueError(f"`function` must be callable. Received: {function!r}")
        if not isinstance(input_specs, dict) or not input_specs:
            raise ValueError(
                f"`input_specs` must be a non-empty dict of tf.TensorSpec. Received: {input_specs!r}"
            )
        for key, spec in input_specs.items():
            if not isinstance(key, str) or not _NAME_PATTERN.match(key):
                raise ValueError(f"Input names must be identifiers. Received: {key!r}")
            if not isinstance(spec, tf.TensorSpec):
                raise ValueError(f"input_specs[{key!r}] must be a tf.TensorSpec. Received: {spec!r}")
        if not isinstance(example_inputs, dict) or set(example_inputs) != set(input_specs):
            raise ValueError(
                "`example_inputs` must have exactly the keys of `input_specs` "
                f"{sorted(input_specs)}. Received keys: "
                f"{sorted(example_inputs) if isinstance(example_inputs, dict) else example_inputs!r}"
            )
        examples = {}
        for key, spec in input_specs.items():
            value = np.asarray(example_inputs[key], dtype=object if spec.dtype == tf.string else None)
            if spec.dtype != tf.string:
                value = value.astype(spec.dtype.as_numpy_dtype)
            if not spec.shape.is_compatible_with(value.shape):
                raise ValueError(
                    f"example_inputs[{key!r}] has shape {value.shape}, not compatible with "
                    f"the spec {spec.shape}."
                )
            examples[key] = value
        resources = dict(resources or {})
        for key, value in resources.items():
            if not isinstance(value, tf.__internal__.tracking.Trackable):
                raise ValueError(
                    f"resources[{key!r}] must be trackable (a Keras layer/model, tf.Module, tf.Variable, "
                    f"lookup table). Received: {type(value).__name__}"
                )
        self.name = name
        self.resources = resources
        self.function = function
        self.input_specs = {
            key: tf.TensorSpec(spec.shape, spec.dtype, name=key) for key, spec in input_specs.items()
        }
        self.example_inputs = examples
        self.requires_tensorflow_text = bool(requires_tensorflow_text)
        self.description = description

    def concrete_function(self):
        """Traces `function` once with `input_specs`; the result is what gets saved.

        Signature inputs take the names of the specs (keys of `input_specs`),
        outputs the keys of the returned dict.
        """
        names = list(self.input_specs)

        def signature_function(*args):
            outputs = self.function(**dict(zip(names, args)))
            if not isinstance(outputs, dict) or not outputs:
                raise ValueError(
                    f"Signature {self.name!r} must return a non-empty dict of named tensors "
                    f"(plain tensors get anonymous 'output_0' names). Received: {type(outputs).__name__}"
                )
            for key in outputs:
                if not isinstance(key, str) or not _NAME_PATTERN.match(key):
                    raise ValueError(f"Signature {self.name!r}: output names must be identifiers. Received: {key!r}")
            return outputs

        signature_function.__name__ = self.name
        traced = tf.function(signature_function, input_signature=list(self.input_specs.values()))
        return traced.get_concrete_function()

    def __repr__(self):
        inputs = ", ".join(
            f"{key}: {spec.dtype.name}{spec.shape}" for key, spec in self.input_specs.items()
        )
        return f"ExportSignature({self.name}({inputs}))"

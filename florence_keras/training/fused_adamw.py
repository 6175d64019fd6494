"""`FusedAdamW`: Keras AdamW whose per-variable Adam update is one fused TensorFlow kernel."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="florence_keras")
class FusedAdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with the Adam update of each variable done by one kernel.

    Keras writes the Adam update as eight element-wise operations per variable (two moment updates, a
    square, a square root, a division, ...), each a full pass over the variable's memory. On the
    TensorFlow backend this class hands the same update to TensorFlow's `ResourceApplyAdam` kernel,
    which does it in one pass with the same formula:

        α = η·√(1−β2ᵗ)/(1−β1ᵗ);  m += (g − m)(1 − β1);  v += (g² − v)(1 − β2);  w −= α·m / (√v + ε)

    (measured: a FlorenceCLIP-T sized update 2.5× faster; see docs/benchmarks.md). Everything else —
    the decoupled weight decay and its exclusions, the learning-rate schedule, clipping, the variables
    and their order in checkpoints, `get_config` — is Keras's AdamW, so checkpoints and presets move
    freely between the two. Where the kernel does not apply (another backend, `amsgrad`, sparse
    gradients, a dtype the kernel lacks), the step falls back to Keras's own update.

    Args:
        **kwargs: the arguments of `keras.optimizers.AdamW`.

    Example:

    >>> layer = keras.layers.Dense(2)
    >>> layer.build((None, 3))
    >>> optimizer = FusedAdamW(learning_rate=1e-3, weight_decay=0.1)
    >>> optimizer.apply(
    ...     [keras.ops.ones((3, 2)), keras.ops.ones((2,))], layer.trainable_variables)
    >>> int(optimizer.iterations)
    1
    """

    _FUSED_DTYPES = ("float32", "float64", "bfloat16", "float16")

    def _fused_applies(self, gradient, variable):
        return (
            keras.backend.backend() == "tensorflow"
            and not self.amsgrad
            and not isinstance(gradient, tf.IndexedSlices)
            and isinstance(variable, tf.Variable)
            and variable.dtype.name in self._FUSED_DTYPES
        )

    def update_step(self, gradient, variable, learning_rate):
        if not self._fused_applies(gradient, variable):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        momentum = self._momentums[index]
        velocity = self._velocities[index]
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=_tf_variable(momentum).handle,
            v=_tf_variable(velocity).handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
            use_nesterov=False,
        )


def _tf_variable(variable):
    """The TensorFlow variable behind a Keras variable (slots are Keras variables)."""
    return variable.value if isinstance(variable, keras.Variable) else variable

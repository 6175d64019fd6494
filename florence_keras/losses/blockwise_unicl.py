"""UniCL per-anchor losses computed in blocks of anchors, with a hand-written gradient.

`unicl_anchor_losses` materialises the [b, B] logits of both directions (b local anchors, B the global
batch), their log-softmax and the positive mask, and autodiff keeps several such matrices for the backward
pass: at Florence's B = 24,576 that is gigabytes, the one part of a gradient-cache step that still grows
with B². This module computes the same values `block_size` anchors at a time. For anchor i with logits
L_ij = s·u_i·V_j over the global batch, positives M_ij = [y_i = Y_j] and n_i = Σ_j M_ij:

    ℓ^i2t_i = logsumexp_j L_ij − Σ_j M_ij L_ij / n_i
    ∂ℓ^i2t_i / ∂L_ij = softmax_j(L_i)_j − M_ij / n_i =: G_ij

so with the upstream gradient w_i of ℓ_i,

    ∂/∂u_i = s Σ_j w_i G_ij V_j,   ∂/∂V_j = s Σ_i w_i G_ij u_i,   ∂/∂s = Σ_ij w_i G_ij (u_i·V_j),

and symmetrically for text anchors against the global images. The forward pass keeps only the [b]
log-sum-exps; the backward pass recomputes each block's logits. Peak memory is O(block_size · B + B · D)
instead of O(b · B), at the price of one more pair of [b, D] × [D, B] products.

The inputs are the *post-gather* tensors: when the caller passes a `replica_context` to
`unicl_anchor_losses`, its differentiable all-gather stays outside this function and routes the gradients of
the global columns back to their replicas exactly as in the dense path. This function never gathers.
TensorFlow only (it serves the TensorFlow training loop).
"""

import tensorflow as tf


def _blocks(num_rows, block_size):
    return (num_rows + block_size - 1) // block_size


def _row_slice(x, index, block_size, num_rows):
    start = index * block_size
    size = tf.minimum(block_size, num_rows - start)
    return x[start:start + size]


def _block_terms(anchors, columns, anchor_labels, column_labels, scale):
    """Logits, positive mask and positive count of one block of anchors."""
    products = tf.matmul(anchors, columns, transpose_b=True)  # (c, B) cosine similarities
    positives = tf.cast(tf.equal(anchor_labels[:, None], column_labels[None, :]), tf.float32)
    count = tf.maximum(tf.reduce_sum(positives, axis=1), 1.0)
    return products, scale * products, positives, count


def blockwise_unicl_anchor_losses(image_embeddings, text_embeddings, all_images, all_texts, labels,
                                  all_labels, logit_scale, block_size):
    """Per-anchor UniCL losses ℓ_i = ℓ^i2t_i + ℓ^t2i_i, `block_size` anchors at a time.

    Equal (to float rounding) to the dense computation in `unicl_loss.unicl_anchor_losses`, with the
    gradient given in closed form (module docstring).

    Args:
        image_embeddings: float32 [b, D] local anchor images.
        text_embeddings: float32 [b, D] local anchor texts.
        all_images: float32 [B, D] the global batch's images (the columns of text anchors).
        all_texts: float32 [B, D] the global batch's texts (the columns of image anchors).
        labels: integer [b] local labels.
        all_labels: integer [B] global labels.
        logit_scale: float32 scalar s.
        block_size: int > 0, anchors per block.

    Returns:
        float32 [b] tensor of ℓ_i.
    """
    if not isinstance(block_size, int) or block_size <= 0:
        raise ValueError(f"`block_size` must be a positive int. Received: block_size={block_size!r}")
    labels = tf.convert_to_tensor(labels)
    all_labels = tf.cast(tf.convert_to_tensor(all_labels), labels.dtype)

    @tf.custom_gradient
    def losses_fn(u, v, big_u, big_v, s):
        num_rows = tf.shape(u)[0]
        num_blocks = _blocks(num_rows, block_size)

        def forward(i, array):
            total = tf.zeros([tf.minimum(block_size, num_rows - i * block_size)], tf.float32)
            for anchors, columns in ((u, big_v), (v, big_u)):
                block = _row_slice(anchors, i, block_size, num_rows)
                block_labels = _row_slice(labels, i, block_size, num_rows)
                _, logits, positives, count = _block_terms(block, columns, block_labels, all_labels, s)
                total += (tf.reduce_logsumexp(logits, axis=1)
                          - tf.reduce_sum(positives * logits, axis=1) / count)
            return i + 1, array.write(i, total)

        _, array = tf.while_loop(
            lambda i, _: i < num_blocks, forward,
            (tf.constant(0), tf.TensorArray(tf.float32, size=num_blocks, infer_shape=False,
                                            element_shape=tf.TensorShape([None]))),
            parallel_iterations=1)
        losses = array.concat()

        def grad_fn(upstream):
            upstream = tf.cast(upstream, tf.float32)

            def backward(i, du_array, dv_array, d_big_u, d_big_v, d_scale):
                weights = _row_slice(upstream, i, block_size, num_rows)[:, None]
                block_labels = _row_slice(labels, i, block_size, num_rows)
                outputs = []
                for anchors, columns in ((u, big_v), (v, big_u)):
                    block = _row_slice(anchors, i, block_size, num_rows)
                    products, logits, positives, count = _block_terms(
                        block, columns, block_labels, all_labels, s)
                    g = weights * (tf.nn.softmax(logits, axis=1) - positives / count[:, None])
                    outputs.append((s * tf.matmul(g, columns),                      # d anchors
                                    s * tf.matmul(g, block, transpose_a=True),      # d columns
                                    tf.reduce_sum(g * products)))                  # d s
                (du, d_cols_v, ds_1), (dv, d_cols_u, ds_2) = outputs
                return (i + 1, du_array.write(i, du), dv_array.write(i, dv),
                        d_big_u + d_cols_u, d_big_v + d_cols_v, d_scale + ds_1 + ds_2)

            def rows_array():
                return tf.TensorArray(tf.float32, size=num_blocks, infer_shape=False,
                                      element_shape=tf.TensorShape([None, u.shape[-1]]))

            _, du_array, dv_array, d_big_u, d_big_v, d_scale = tf.while_loop(
                lambda i, *_: i < num_blocks, backward,
                (tf.constant(0), rows_array(), rows_array(), tf.zeros_like(big_u),
                 tf.zeros_like(big_v), tf.zeros([], tf.float32)),
                parallel_iterations=1)
            return du_array.concat(), dv_array.concat(), d_big_u, d_big_v, d_scale

        return losses, grad_fn

    return losses_fn(
        tf.cast(image_embeddings, tf.float32), tf.cast(text_embeddings, tf.float32),
        tf.cast(all_images, tf.float32), tf.cast(all_texts, tf.float32),
        tf.reshape(tf.cast(logit_scale, tf.float32), []))

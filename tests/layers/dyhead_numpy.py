"""NumPy references for the Dynamic Head layers (loops and plain formulas, no keras): DCNv2, GroupNorm, resize,
the three attentions. Shared by the tests of florence_keras/layers/{modulated_deformable_conv2d, *_attention,
dy_head_block, dynamic_head}.py."""

import numpy as np


def bilinear(image, y, x):
    """Bilinear sample of `image` (H, W, C) at (y, x); pixels outside the image count as zero."""
    height, width = image.shape[:2]
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    value = np.zeros(image.shape[-1], image.dtype)
    for yy in (y0, y0 + 1):
        for xx in (x0, x0 + 1):
            if 0 <= yy < height and 0 <= xx < width:
                value = value + (1 - abs(y - yy)) * (1 - abs(x - xx)) * image[yy, xx]
    return value


def same_padding(size, strides, k):
    out = -(-size // strides)
    return out, max((out - 1) * strides + k - size, 0) // 2


def dcn(x, offset, mask, kernel, bias, strides):
    """DCNv2 with Keras 'same' positions, one output position and one tap at a time."""
    batch, height, width, _ = x.shape
    k = kernel.shape[0]
    (out_h, pad_top), (out_w, pad_left) = same_padding(height, strides, k), same_padding(width, strides, k)
    out = np.zeros((batch, out_h, out_w, kernel.shape[-1]), x.dtype)
    for b in range(batch):
        for i in range(out_h):
            for j in range(out_w):
                acc = np.zeros(kernel.shape[-1], x.dtype)
                for ki in range(k):
                    for kj in range(k):
                        t = ki * k + kj
                        y = i * strides - pad_top + ki + offset[b, i, j, 2 * t]
                        xx = j * strides - pad_left + kj + offset[b, i, j, 2 * t + 1]
                        acc = acc + mask[b, i, j, t] * (bilinear(x[b], y, xx) @ kernel[ki, kj])
                out[b, i, j] = acc + bias
    return out


def conv_same(x, kernel, bias):
    """Stride-1 'same' convolution (odd kernel), NHWC."""
    pad = kernel.shape[0] // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            out += padded[:, i:i + x.shape[1], j:j + x.shape[2]] @ kernel[i, j]
    return out + bias


def group_norm(x, groups, gamma, beta, epsilon=1e-5):
    b, h, w, c = x.shape
    g = x.reshape(b, h, w, groups, c // groups)
    mean = g.mean(axis=(1, 2, 4), keepdims=True)
    var = g.var(axis=(1, 2, 4), keepdims=True)
    return ((g - mean) / np.sqrt(var + epsilon)).reshape(x.shape) * gamma + beta


def resize_bilinear(x, height, width):
    """Half-pixel-centre bilinear resize (TF / keras.ops.image.resize), separable."""
    def matrix(out_size, in_size):
        m = np.zeros((out_size, in_size))
        for i in range(out_size):
            src = min(max((i + 0.5) * in_size / out_size - 0.5, 0.0), in_size - 1)
            lo = int(np.floor(src))
            hi = min(lo + 1, in_size - 1)
            m[i, lo] += 1 - (src - lo)
            m[i, hi] += src - lo
        return m

    return np.einsum("Hh,bhwc,Ww->bHWc", matrix(height, x.shape[1]), x, matrix(width, x.shape[2]))


def hard_sigmoid(x):
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


def scale_attention(x, weight, bias):
    """`x * hard_sigmoid(relu(GAP(x) @ weight + bias))`; weight (C, 1)."""
    pi = hard_sigmoid(np.maximum(x.mean(axis=(1, 2)) @ weight + bias, 0.0))
    return x * pi[:, None, None, :]


def dynamic_relu(x, w1, b1, w2, b2):
    """DyReLU-B (K = 2) of microsoft/DynamicHead: theta split into a1, b1, a2, b2."""
    c = x.shape[-1]
    theta = hard_sigmoid(np.maximum(x.mean(axis=(1, 2)) @ w1 + b1, 0.0) @ w2 + b2)[:, None, None, :]
    a1, c1, a2, c2 = theta[..., :c], theta[..., c:2 * c], theta[..., 2 * c:3 * c], theta[..., 3 * c:]
    return np.maximum(x * (2 * (a1 - 0.5) + 1) + (c1 - 0.5), x * (2 * (a2 - 0.5)) + (c2 - 0.5))


def spatial_attention(levels, params, groups):
    """Branches [mid, low, high] per level; the high branch uses level l+1's own offsets (the documented fix).

    `params`: offset_kernel, offset_bias, and per branch name `{name}_kernel`, `{name}_gamma`, `{name}_beta`.
    """
    predicted = [conv_same(x, params["offset_kernel"], params["offset_bias"]) for x in levels]
    offsets = [p[..., :18] for p in predicted]
    masks = [1 / (1 + np.exp(-p[..., 18:])) for p in predicted]
    zero = np.zeros(levels[0].shape[-1])

    def branch(name, x, level, strides):
        out = dcn(x, offsets[level], masks[level], params[f"{name}_kernel"], zero, strides)
        return group_norm(out, groups, params[f"{name}_gamma"], params[f"{name}_beta"])

    outputs = []
    for level, x in enumerate(levels):
        branches = [branch("mid", x, level, 1)]
        if level > 0:
            branches.append(branch("low", levels[level - 1], level, 2))
        if level < len(levels) - 1:
            branches.append(resize_bilinear(branch("high", levels[level + 1], level + 1, 1), *x.shape[1:3]))
        outputs.append(branches)
    return outputs


def spatial_params(layer):
    """The NumPy parameters of a built `SpatialAwareAttention`."""
    params = dict(zip(("offset_kernel", "offset_bias"), (w.numpy() for w in layer.offset_mask.weights)))
    for name in ("mid", "low", "high"):
        params[f"{name}_kernel"] = layer.convs[name].kernel.numpy()
        params[f"{name}_gamma"], params[f"{name}_beta"] = (w.numpy() for w in layer.norms[name].weights)
    return params


def dy_head_block(levels, block):
    """A `DyHeadBlock`'s output from its weights: spatial -> scale per branch -> mean -> dynamic ReLU."""
    branches = spatial_attention(levels, spatial_params(block.spatial), block.norm_groups)
    scale_w, scale_b = (w.numpy() for w in block.scale.gate.weights)
    relu_weights = [w.numpy() for w in block.task.squeeze.weights + block.task.expand.weights]
    return [dynamic_relu(np.mean([scale_attention(b, scale_w, scale_b) for b in level], axis=0), *relu_weights)
            for level in branches]


def run_list_serialization_test(layer, inputs):
    """`tests.test_case.run_serialization_test` for layers returning (nested) lists: config and outputs round-trip."""
    import keras

    expected = layer(inputs)
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    clone(inputs)
    assert clone.get_config() == config
    clone.set_weights(layer.get_weights())
    flat_expected, flat_actual = keras.tree.flatten(expected), keras.tree.flatten(clone(inputs))
    assert len(flat_actual) == len(flat_expected)
    for actual, want in zip(flat_actual, flat_expected):
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(want))
    assert keras.layers.deserialize(keras.layers.serialize(layer)).get_config() == config

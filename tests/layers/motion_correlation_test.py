"""MotionCorrelation: against a NumPy loop, direction selectivity on a translating pattern, config round trip."""

import keras
import numpy as np
import pytest

from florence_keras.layers.motion_correlation import MotionCorrelation


def _reference(tokens, radius, temperature, epsilon=1e-3):
    """Per-position loops in float64: the definition in the layer's docstring."""
    batch, frames, height, width, _ = tokens.shape
    unit = tokens / np.sqrt((tokens.astype(np.float64) ** 2).sum(-1, keepdims=True) + 1e-12)
    offsets = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    out = np.zeros((batch, len(offsets) + 3))
    for b in range(batch):
        weighted_u, weighted_p, change_sum, count = np.zeros(2), np.zeros(len(offsets)), 0.0, 0
        for t in range(frames - 1):
            for y in range(height):
                for x in range(width):
                    volume = np.zeros(len(offsets))
                    for k, (dy, dx) in enumerate(offsets):
                        if 0 <= y + dy < height and 0 <= x + dx < width:
                            volume[k] = unit[b, t, y, x] @ unit[b, t + 1, y + dy, x + dx]
                    probs = np.exp(temperature * volume - (temperature * volume).max())
                    probs /= probs.sum()
                    u = probs @ np.array(offsets, np.float64)
                    w = max(1.0 - volume[len(offsets) // 2], 0.0)
                    weighted_u += w * u
                    weighted_p += w * probs
                    change_sum += w
                    count += 1
        total = change_sum / count + epsilon
        out[b] = np.concatenate([weighted_u / count / total, weighted_p / count / total * len(offsets),
                                 [change_sum / count]])
    return out


@pytest.mark.parametrize("radius, temperature, shape", [(1, 10.0, (2, 3, 5, 6, 4)), (2, 3.0, (1, 2, 4, 4, 3))])
def test_matches_a_numpy_loop(radius, temperature, shape):
    tokens = np.random.default_rng(radius).normal(size=shape).astype("float32")
    out = np.asarray(MotionCorrelation(radius, temperature=temperature)(tokens))
    assert out.shape == (shape[0], (2 * radius + 1) ** 2 + 3)
    np.testing.assert_allclose(out, _reference(tokens, radius, temperature), rtol=2e-4, atol=2e-5)


def _translating_pattern(step_y, step_x, frames=4, size=16, channels=64, seed=0):
    pattern = np.random.default_rng(seed).normal(size=(size + 8, size + 8, channels)).astype("float32")
    return np.stack([pattern[4 - t * step_y:4 - t * step_y + size, 4 - t * step_x:4 - t * step_x + size]
                     for t in range(frames)])[None]  # content moves by (step_y, step_x) per frame


@pytest.mark.parametrize("step", [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1)])
def test_displacement_follows_the_motion_and_reverses_with_time(step):
    layer = MotionCorrelation(radius=2)
    clip = _translating_pattern(*step)
    displacement = np.asarray(layer(clip))[0, :2]
    # The tokens that enter or leave at the border have no match and pull the mean toward 0: <= 1/8 of them here.
    np.testing.assert_allclose(displacement, step, atol=0.2)
    assert np.all(np.sign(np.round(displacement, 1)) == np.sign(step))
    np.testing.assert_allclose(np.asarray(layer(clip[:, ::-1]))[0, :2], -displacement, atol=0.05)


def test_still_or_single_frame_clips_give_no_motion():
    layer = MotionCorrelation(radius=1)
    still = np.repeat(_translating_pattern(0, 0, frames=1), 3, axis=1)
    np.testing.assert_allclose(np.asarray(layer(still)), 0.0, atol=1e-3)  # float error in w, over epsilon
    np.testing.assert_array_equal(np.asarray(layer(still[:, :1])), np.zeros((1, 12)))


def test_config_round_trip_and_bad_arguments():
    layer = MotionCorrelation(radius=3, temperature=5.0, name="motion")
    restored = MotionCorrelation.from_config(layer.get_config())
    assert (restored.radius, restored.temperature, restored.name) == (3, 5.0, "motion")
    assert keras.layers.deserialize(keras.layers.serialize(layer)).output_dim == 52
    with pytest.raises(ValueError, match="radius"):
        MotionCorrelation(radius=0)
    with pytest.raises(ValueError, match="temperature"):
        MotionCorrelation(temperature=0.0)
    with pytest.raises(ValueError, match="B, T, H, W, C"):
        MotionCorrelation()(np.zeros((1, 4, 4, 3), "float32"))

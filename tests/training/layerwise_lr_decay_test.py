"""Layer-wise learning-rate decay: the multipliers by depth and one AdamW step against numpy."""

import keras
import numpy as np
import pytest

from florence_keras.training.fused_adamw import FusedAdamW
from florence_keras.training.optimizer_factory import AdamWConfig
from florence_keras.training.layerwise_lr_decay import LayerwiseDecayAdamW
from florence_keras.training.layerwise_lr_decay import layerwise_lr_multipliers
from florence_keras.training.layerwise_lr_decay import make_layerwise_decay_optimizer
from florence_keras.training.warmup_cosine_decay import WarmupCosineDecay

PEAK_LR, WEIGHT_DECAY, BETA_1, BETA_2, EPSILON = 0.1, 0.05, 0.9, 0.999, 1e-8


def _numpy_adamw(w, g, lr, step, decay=True):
    """Keras's AdamW for one variable from zero moments, written out (step is 1-based)."""
    if decay:
        w = w - w * WEIGHT_DECAY * lr
    m = (1 - BETA_1) * g
    v = (1 - BETA_2) * g * g
    alpha = lr * np.sqrt(1 - BETA_2**step) / (1 - BETA_1**step)
    return w - m * alpha / (np.sqrt(v) + EPSILON)


def test_scaled_update_matches_numpy_adamw():
    rng = np.random.default_rng(0)
    kernel0, bias0 = rng.normal(size=(3, 2)).astype("float32"), rng.normal(size=(2,)).astype("float32")
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    layer.kernel.assign(kernel0)
    layer.bias.assign(bias0)
    variables = [layer.kernel, layer.bias]
    # Warm-up of 4 steps: the first update uses peak / 4.
    config = AdamWConfig(learning_rate=PEAK_LR, warmup_steps=4, weight_decay=WEIGHT_DECAY, beta_1=BETA_1,
                         beta_2=BETA_2, epsilon=EPSILON)
    optimizer = make_layerwise_decay_optimizer(variables, [0.25, 1.0], config, total_steps=10)
    assert isinstance(optimizer, LayerwiseDecayAdamW)
    grads = [rng.normal(size=(3, 2)).astype("float32"), rng.normal(size=(2,)).astype("float32")]
    optimizer.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], variables))
    lr = PEAK_LR / 4
    # The kernel: multiplier 0.25 on both the Adam update and the decoupled weight decay.
    np.testing.assert_allclose(layer.kernel.numpy(), _numpy_adamw(kernel0, grads[0], 0.25 * lr, 1), rtol=1e-6)
    # The bias (rank 1): full learning rate, no weight decay.
    np.testing.assert_allclose(layer.bias.numpy(), _numpy_adamw(bias0, grads[1], lr, 1, decay=False), rtol=1e-6)
    # Adam's first step moves each element by ~lr regardless of the gradient's scale: a scaled *gradient*
    # would not have reduced the kernel's step, the scaled learning rate does (by exactly 4x, before decay).
    step = np.abs(_numpy_adamw(kernel0, grads[0], 0.25 * lr, 1, decay=False) - kernel0)
    np.testing.assert_allclose(step, 0.25 * lr, rtol=1e-4)


def test_multiplier_one_is_the_project_adamw():
    start = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")
    grads = np.random.default_rng(2).normal(size=(3, 4, 3)).astype("float32") * np.arange(1, 4)[:, None, None]
    results = {}
    for cls in (keras.optimizers.AdamW, FusedAdamW, LayerwiseDecayAdamW):
        variable = keras.Variable(start)
        optimizer = cls(learning_rate=WarmupCosineDecay(0.01, total_steps=5), weight_decay=0.1)
        optimizer.build([variable])
        for grad in grads:
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(grad), variable)])
        results[cls.__name__] = variable.numpy()
    np.testing.assert_allclose(results["LayerwiseDecayAdamW"], results["FusedAdamW"], rtol=1e-6)
    np.testing.assert_allclose(results["LayerwiseDecayAdamW"], results["AdamW"], atol=1e-6)  # fused-kernel rounding


def test_coswin_layer_ids():
    from tests.model_fixtures import tiny_test_backbone

    backbone = tiny_test_backbone(image_size=32)  # CoSwin depths (1, 2); text: 2 blocks
    decay = 0.5
    multipliers = dict(zip((id(v) for v in backbone.trainable_variables),
                           layerwise_lr_multipliers(backbone, decay)))

    def image(path):
        [variable] = [v for v in backbone.image_encoder.trainable_variables if v.path == path]
        return multipliers[id(variable)]

    def text(path):
        [variable] = [v for v in backbone.text_encoder.trainable_variables if v.path == path]
        return multipliers[id(variable)]

    # Image tower: sum(depths) + 2 = 5 layers; top id 4.
    assert image("stem/conv/kernel") == decay**4          # id 0
    assert image("stage_0_block_0/attention/qkv/kernel") == decay**3   # id 1
    assert image("stage_1_embedding/conv/kernel") == decay**3          # id sum(depths[:1]) = 1
    assert image("stage_1_block_0/mlp_dense_1/kernel") == decay**2     # id 2
    assert image("stage_1_block_1/mlp_dense_1/kernel") == decay**1     # id 3
    assert image("final_norm/gamma") == 1.0
    # Text tower: 2 blocks + 2 = 4 layers.
    assert text("embedding/token_embedding/embeddings") == decay**3
    assert text("block_0/dense_1/kernel") == decay**2
    assert text("block_1/dense_1/kernel") == decay**1
    assert text("final_norm/gamma") == 1.0
    by_path = {v.path: multipliers[id(v)] for v in backbone.trainable_variables}
    assert by_path["image_projection/kernel"] == by_path["text_projection/kernel"] == 1.0
    assert by_path["logit_scale/log_logit_scale"] == 1.0
    assert set(layerwise_lr_multipliers(backbone, 1.0)) == {1.0}


def test_bad_arguments():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    with pytest.raises(ValueError, match="layer_decay"):
        layerwise_lr_multipliers(layer, 0.0)
    optimizer = LayerwiseDecayAdamW(learning_rate=0.1)
    optimizer.build(layer.trainable_variables)
    with pytest.raises(ValueError, match="same length"):
        optimizer.set_learning_rate_multipliers(layer.trainable_variables, [1.0])


def test_backbone_lr_multipliers_on_a_vqa_task():
    import doctest

    from florence_keras.models.florence_vqa import FlorenceVQA
    from florence_keras.training import layerwise_lr_decay
    from florence_keras.training.layerwise_lr_decay import backbone_lr_multipliers
    from tests.model_fixtures import tiny_clip

    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(backbone_lr_multipliers, globs={
            "keras": keras, "backbone_lr_multipliers": backbone_lr_multipliers}):
        runner.run(test)
    assert runner.tries >= 3 and runner.failures == 0
    backbone = tiny_clip(32).backbone
    vqa = FlorenceVQA(backbone, answer_vocabulary=["yes", "no"], question_length=8, fusion_dim=8, fusion_layers=1,
                      fusion_heads=2)
    variables = vqa.trainable_variables
    multipliers = backbone_lr_multipliers(vqa, 0.2, variables)
    in_backbone = {id(v) for v in backbone.weights}
    assert len(multipliers) == len(variables)
    assert {m for v, m in zip(variables, multipliers) if id(v) in in_backbone} == {0.2}
    new = [v.path for v, m in zip(variables, multipliers) if m == 1.0]
    assert new and all(path.startswith(("fusion", "head_", "image_position_embedding")) for path in new), new
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="backbone_multiplier"):
            backbone_lr_multipliers(vqa, bad)
    with pytest.raises(ValueError, match="has no `backbone`"):
        layerwise_lr_decay.backbone_lr_multipliers(keras.layers.Dense(2), 0.5)

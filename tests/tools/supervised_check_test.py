"""tools/supervised_check.py: data from the generator's splits, and a tiny run that reports what it measured."""

import numpy as np

from florence_keras.data.scene_generator import SceneGenerator
from tools import supervised_check


def test_arrays_are_one_object_scenes_of_the_asked_split():
    images, labels, names, sizes = supervised_check.make_arrays(6, "test", 32, 3, with_sizes=True)
    generator = SceneGenerator(image_size=32, seed=3, max_objects=1)
    for index in range(6):
        scene = generator.scene(index, "test")
        assert len(scene.objects) == 1
        np.testing.assert_array_equal(images[index], scene.image)
        assert names[labels[index]] == scene.primary.shape and sizes[index] == scene.primary.size
    _, colour_labels, colour_names = supervised_check.make_arrays(6, "train", 32, 3, target="colour")
    train = SceneGenerator(image_size=32, seed=3, max_objects=1)
    assert [colour_names[k] for k in colour_labels] == [train.scene(i).primary.colour for i in range(6)]


def test_a_tiny_run_reports_accuracy_consistent_with_its_breakdowns():
    result = supervised_check.supervised_check(
        image_size=32, steps=2, batch_size=4, num_train=8, num_test=24, seed=1, verbose=False,
        override={"depths": [1, 1, 1, 1]})
    _, labels, names = supervised_check.make_arrays(24, "test", 32, 1)
    counts = {name: int(np.sum(labels == k)) for k, name in enumerate(names)}
    recomputed = sum(result["per_class_accuracy"][name] * counts[name] for name in result["per_class_accuracy"]) / 24
    assert abs(recomputed - result["accuracy"]) < 1e-9
    assert result["chance"] == 1 / 8 and result["steps"] == 2 and result["encoder_config"]["depths"] == [1, 1, 1, 1]
    assert result["wall_seconds"] > 0 and result["cpu_seconds"] > 0
    assert set(result["per_size_accuracy"]) <= {"small", "medium", "large"}
    confusion = np.array(result["confusion"])
    assert confusion.sum() == 24 and abs(np.trace(confusion) / 24 - result["accuracy"]) < 1e-9
    assert np.array_equal(confusion.sum(axis=1), [counts[name] for name in names])

import matplotlib.image
import numpy as np
import pytest

from florence_keras.evaluation import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path):
    with open(path, "rb") as file:
        assert file.read(8) == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    return image


def test_confusion_matrix_small_and_large(tmp_path):
    matrix = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    read_png(plots.plot_confusion_matrix(matrix, ["cat", "dog", "a very long class name indeed"], tmp_path / "a.png"))
    rng = np.random.default_rng(0)
    big = rng.integers(0, 5, size=(60, 60))
    read_png(plots.plot_confusion_matrix(big, [f"c{i}" for i in range(60)], tmp_path / "b.png", max_classes=10))
    with pytest.raises(ValueError, match="square"):
        plots.plot_confusion_matrix(np.zeros((2, 3)), ["a", "b"], tmp_path / "c.png")
    with pytest.raises(ValueError, match="png"):
        plots.plot_confusion_matrix(matrix, ["a", "b", "c"], tmp_path / "c.jpg")


def test_retrieval_grids(tmp_path):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, size=(16, 20, 3), dtype=np.uint8) for _ in range(6)]
    float_image = rng.normal(size=(12, 12, 3))  # normalised-style floats are rescaled for display
    path = plots.plot_text_to_image_results(
        ["a dog on grass", "a red car parked next to a very long building with many windows"],
        [[images[0], images[1], float_image], [images[2], images[3], images[4]]],
        tmp_path / "t2i.png",
        correct=[[True, False, False], [False, False, True]],
    )
    read_png(path)
    path = plots.plot_image_to_text_results(
        [images[0], images[5][..., :1]], [["one", "two"], ["three", "four"]], tmp_path / "i2t.png",
        correct=np.array([[True, False], [False, False]]),
    )
    read_png(path)
    with pytest.raises(ValueError, match="correct"):
        plots.plot_image_to_text_results([images[0]], [["a", "b"]], tmp_path / "x.png", correct=[[True]])
    with pytest.raises(ValueError, match="same, non-zero"):
        plots.plot_text_to_image_results(["a", "b"], [[images[0]], []], tmp_path / "x.png")


def test_accuracy_vs_shots(tmp_path):
    rows = [
        {"k_shot": 20, "mean_accuracy": 0.7, "ci95": 0.01},
        {"k_shot": 5, "mean_accuracy": 0.5, "ci95": 0.02},
    ]
    read_png(plots.plot_accuracy_vs_shots(rows, tmp_path / "shots.png"))
    read_png(plots.plot_accuracy_vs_shots({"a": rows, "b": rows[:1]}, tmp_path / "shots2.png"))
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_accuracy_vs_shots([], tmp_path / "none.png")

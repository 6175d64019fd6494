"""The training curves of a run: TensorBoard scalars read back from `MODEL_DIR/tensorboard`, drawn as a PNG."""

import glob
import os

import numpy as np

# Reference lines of the UniCL loss at batch B [ours]: chance is 2 ln B (both directions uniform).
CURVE_SCALARS = ("loss", "learning_rate", "logit_scale")


def read_scalars(tensorboard_dir, tags=CURVE_SCALARS):
    """Scalars written by `UniCLTrainer` (every event file under `tensorboard_dir`), sorted by step.

    A resumed run appends a new event file; a step written twice keeps its last value.

    Args:
        tensorboard_dir: the trainer's `model_dir/tensorboard`.
        tags: the scalar names to read.

    Returns:
        dict tag -> `(steps, values)`, two numpy arrays (empty when the tag never occurs).
    """
    import tensorflow as tf

    found = {tag: {} for tag in tags}
    for path in sorted(glob.glob(os.path.join(os.fspath(tensorboard_dir), "**", "events.out.tfevents.*"),
                            recursive=True)):
        # Event files are TFRecords of `Event` protos (`summary_iterator` reads the same, with a deprecation warning).
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag in found:
                    number = (float(tf.make_ndarray(value.tensor)) if value.HasField("tensor")
                              else float(value.simple_value))
                    found[value.tag][int(event.step)] = number
    result = {}
    for tag, points in found.items():
        steps = np.array(sorted(points), dtype=np.int64)
        result[tag] = (steps, np.array([points[s] for s in steps], dtype=np.float64))
    return result


def plot_loss_curve(tensorboard_dir, path, batch_size=None, title="UniCL pretraining"):
    """Draws the loss (with chance `2 ln B` when `batch_size` is given), learning rate and logit scale as a PNG.

    Args:
        tensorboard_dir: the trainer's `model_dir/tensorboard`.
        path: the PNG to write.
        batch_size: the global batch (draws the chance level of the loss), or None.
        title: figure title.

    Returns:
        `path`, or None when the run logged no loss.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scalars = read_scalars(tensorboard_dir)
    steps, loss = scalars["loss"]
    if not steps.size:
        return None
    figure = Figure(figsize=(9, 3.2))
    axes = figure.subplots(1, 3)
    axes[0].plot(steps, loss, color="tab:blue", label="loss")
    if batch_size:
        axes[0].axhline(2 * np.log(batch_size), color="grey", linestyle="--", label=f"chance 2 ln {batch_size}")
    axes[0].set_title("loss")
    axes[0].legend(fontsize=7)
    for axis, tag in zip(axes[1:], ("learning_rate", "logit_scale")):
        tag_steps, values = scalars[tag]
        axis.plot(tag_steps, values, color="tab:orange")
        axis.set_title(tag.replace("_", " "))
    for axis in axes:
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=90)
    return path

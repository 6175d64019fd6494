"""`encode_video` and `classify_video` signatures of a `FlorenceVideoClassifier`."""

import numpy as np
import tensorflow as tf

from florence_keras.export.export_signature import ExportSignature

VIDEO_SERVING_DEFAULT = "classify_video"


def _example_clip(task):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (1, task.num_frames, task.image_size, task.image_size, 3)).astype(np.uint8)


def video_signatures(task, top_k=5):
    """`encode_video` and `classify_video` of a `FlorenceVideoClassifier`.

    * `encode_video(videos: uint8 [B, T, H, W, 3])` -> `embeddings: float32 [B, D]`, unit norm, in the text
      space (what `task.encode_videos` returns). Frames of another size are resized in the graph; `T` must be
      the model's frame count.
    * `classify_video(videos: uint8 [B, T, H, W, 3])` -> `probabilities: float32 [B, C]`, `top_k_classes:
      string [B, k]`, `top_k_scores: float32 [B, k]` (one view; `task.predict`).

    Both run the task's own `video_inputs` (resize + the preset converter's normalisation) in the graph.

    Returns:
        list of two `ExportSignature`.
    """
    if getattr(task, "preprocessor", None) is None or task.preprocessor.image_converter is None:
        raise ValueError("`task` needs a preprocessor with an image converter to be served.")
    k = min(int(top_k), len(task.class_names))
    names = tf.constant(task.class_names)
    spec = {"videos": tf.TensorSpec([None, task.num_frames, None, None, 3], tf.uint8)}
    example = {"videos": _example_clip(task)}

    def normalized(videos):
        videos = tf.cast(videos, tf.float32)
        shape = tf.shape(videos)
        frames = tf.reshape(videos, tf.concat([[-1], shape[2:]], 0))
        frames = tf.image.resize(frames, (task.image_size, task.image_size), method="bilinear", antialias=True)
        frames = tf.reshape(frames, [-1, task.num_frames, task.image_size, task.image_size, 3])
        return task.video_inputs(frames)  # same size now: only the converter's normalisation

    def encode_video(videos):
        return {"embeddings": tf.cast(task.embed_videos(normalized(videos)), tf.float32)}

    def classify_video(videos):
        probs = tf.nn.softmax(tf.cast(task(normalized(videos), training=False), tf.float32), axis=-1)
        scores, indices = tf.math.top_k(probs, k=k)
        return {"probabilities": probs, "top_k_classes": tf.gather(names, indices), "top_k_scores": scores}

    resources = {"task": task}
    return [
        ExportSignature("encode_video", encode_video, spec, example, resources=resources,
                        description="uint8 clips [B, T, H, W, 3] -> unit-norm float32 embeddings [B, D]"),
        ExportSignature(VIDEO_SERVING_DEFAULT, classify_video, spec, example, resources=resources,
                        description=f"uint8 clips [B, T, H, W, 3] -> class probabilities [B, C] and the top {k}"),
    ]

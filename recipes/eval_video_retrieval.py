r"""Zero-shot text-video retrieval (issue #15): text->video and video->text R@1/5/10 and median rank.

Run:
  python recipes/eval_video_retrieval.py --preset=P --data=videos.csv --output_dir=OUT

--data is a `filepath,caption` CSV (`builtin`: the built-in held-out clips' captions, written under --builtin_dir).
With an image preset (FlorenceCLIP), each clip's frames are embedded by the image encoder and the unit
embeddings averaged over frames (Florence's zero-shot video protocol); with a video preset (train_video.py's
M/preset, e.g. after `--objective=unicl`), the Video CoSwin embeds the clip. Identical captions count as one query
(any clip carrying the caption is a hit). Writes OUT/results.json and OUT/results.md.
"""

import os
import time

from absl import app
from absl import flags

flags.DEFINE_string("preset", "florence_mini_builtin", "Image (FlorenceCLIP) or video classifier preset.")
flags.DEFINE_string("data", "builtin", "'builtin' or a filepath,caption CSV of clips.")
flags.DEFINE_string("output_dir", None, "Where results.json and results.md go.", required=True)
flags.DEFINE_integer("num_frames", 8, "Frames per clip (image presets; a video preset uses its own).")
flags.DEFINE_integer("image_size", 64, "Frame side (image presets).")
flags.DEFINE_enum("sampling", "uniform", ["dense", "uniform"], "Clip sampling.")
flags.DEFINE_integer("batch_size", 8, "Clips per batch.")
flags.DEFINE_string("builtin_dir", "/tmp/florence_video_builtin", "Where the built-in clips are written/reused.")
flags.DEFINE_integer("builtin_train", 800, "Built-in training clips (as train_video.py wrote them).")
flags.DEFINE_integer("builtin_heldout", 200, "Built-in held-out clips.")
flags.DEFINE_integer("seed", 0, "Built-in clips' seed.")

FLAGS = flags.FLAGS


def main(argv):
    del argv
    from florence_keras.data.skip_counter import SkipCounter
    from florence_keras.data.video_index import list_video_captions
    from florence_keras.evaluation import reporting
    from florence_keras.evaluation import video_evaluation as ve
    from florence_keras.models.florence_clip import FlorenceCLIP
    from florence_keras.models.florence_video_classifier import FlorenceVideoClassifier
    from florence_keras.training.video_training import is_video_preset

    start = time.time()
    data = FLAGS.data
    if data == "builtin":
        from florence_keras.data.video_builtin import ensure_builtin_video_data

        data = ensure_builtin_video_data(FLAGS.builtin_dir, FLAGS.builtin_train, FLAGS.builtin_heldout,
                                         seed=FLAGS.seed)["heldout_captions"]
    paths, captions = list_video_captions(data)
    counter = SkipCounter(name="video clips")
    if is_video_preset(FLAGS.preset):
        task = FlorenceVideoClassifier.from_preset(FLAGS.preset)
        embeddings, kept = ve.video_embeddings_from_video_task(task, paths, sampling=FLAGS.sampling,
                                                               batch_size=FLAGS.batch_size, skip_counter=counter)
        preprocessor, backbone, encoder = task.preprocessor, task.backbone, "Video CoSwin (inflated)"
    else:
        clip = FlorenceCLIP.from_preset(FLAGS.preset)
        embeddings, kept = ve.video_embeddings_from_frames(clip, paths, num_frames=FLAGS.num_frames,
                                                           image_size=FLAGS.image_size, sampling=FLAGS.sampling,
                                                           batch_size=FLAGS.batch_size, skip_counter=counter)
        preprocessor, backbone, encoder = clip.preprocessor, clip.backbone, "image encoder, frames mean-pooled"

    def embed_texts(texts):
        import numpy as np
        import tensorflow as tf

        ids = preprocessor.tokenize(tf.constant(texts))
        return np.concatenate([np.asarray(backbone.embed_texts(ids[i:i + 256])) for i in range(0, len(texts), 256)])

    result = ve.video_text_retrieval(embeddings, [captions[i] for i in kept], embed_texts)
    result.update(preset=FLAGS.preset, data=data, encoder=encoder, skipped_clips=counter.count,
                  skipped_reasons=dict(counter.reasons), seconds=time.time() - start,
                  process_cpu_seconds=time.process_time())
    keys = [k for k in result if "R@" in k or "median" in k] + ["num_videos", "num_captions"]
    table = reporting.markdown_table([{k: result[k] for k in keys}], float_format=".3f")
    reporting.write_report(FLAGS.output_dir, "results", "Text-video retrieval", result, [("Retrieval", table)])
    print(table)
    print(f"{time.time() - start:.0f} s wall, {time.process_time():.0f} s process CPU; wrote {FLAGS.output_dir}")


if __name__ == "__main__":
    app.run(main)

r"""Writes scikit-image's `stereo_motorcycle` as an image-depth pair, a real-photo sanity check for depth models.

Run, then score a depth preset on it at the photo's own size (no target: an honest figure; with median scaling
since a model trained on the built-in scenes knows nothing of this camera):
  python recipes/prepare_motorcycle_depth.py --output_dir=/tmp/motorcycle
  python recipes/eval_depth.py --preset=M/preset --data=/tmp/motorcycle/pairs.csv --eval_size=0 --output_dir=OUT

Depth from the ground-truth disparity `d` (Middlebury 2014, down-sampled 4×) with the calibration in its docstring:
`Z = B·f / (d + doffs)`, f = 994.978 px, B = 193.001 mm, doffs = 31.086 px; NaN disparities are invalid (0).
Writes `left.png`, `depth.npy` (float32 metres) and `pairs.csv` (`image,depth`).
"""

import os

from absl import app
from absl import flags

flags.DEFINE_string("output_dir", None, "Where left.png, depth.npy and pairs.csv go.", required=True)

FLAGS = flags.FLAGS

FOCAL_PX, BASELINE_MM, DOFFS_PX = 994.978, 193.001, 31.086


def main(argv):
    del argv
    import cv2
    import numpy as np
    from skimage import data

    left, _, disparity = data.stereo_motorcycle()
    valid = np.isfinite(disparity)
    depth = np.zeros(disparity.shape, np.float32)
    depth[valid] = BASELINE_MM * FOCAL_PX / (disparity[valid] + DOFFS_PX) / 1000.0
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    cv2.imwrite(os.path.join(FLAGS.output_dir, "left.png"), cv2.cvtColor(left, cv2.COLOR_RGB2BGR))
    np.save(os.path.join(FLAGS.output_dir, "depth.npy"), depth)
    with open(os.path.join(FLAGS.output_dir, "pairs.csv"), "w", encoding="utf-8") as f:
        f.write("image,depth\nleft.png,depth.npy\n")
    print(f"{left.shape[1]}x{left.shape[0]} photo, depth {depth[valid].min():.2f}-{depth[valid].max():.2f} m on "
          f"{valid.mean():.1%} of the pixels; wrote {FLAGS.output_dir}/pairs.csv")


if __name__ == "__main__":
    app.run(main)

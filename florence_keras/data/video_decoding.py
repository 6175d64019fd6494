"""Decoding and temporal sampling of one clip (OpenCV for video files, image files for frame folders).

NumPy/OpenCV code, run inside `tf.data` through `tf.numpy_function` (see `video_dataset`). A file that cannot be
read raises `VideoDecodeError` with a short reason (`missing`, `unreadable`, `no_frames`); the pipeline turns it
into a counted skip.
"""

import os

import cv2
import numpy as np

from florence_keras.data.video_index import FRAME_EXTENSIONS

SAMPLINGS = ("dense", "uniform")


class VideoDecodeError(Exception):
    """A clip could not be decoded; `reason` is a short tag for the skip counter."""

    def __init__(self, reason, path):
        super().__init__(f"{reason}: {path}")
        self.reason = reason


def sample_frame_indices(num_available, num_frames, stride=1, sampling="dense", position=0.5):
    """Indices of the frames of one clip.

    Args:
        num_available: int >= 1, frames in the video.
        num_frames: int >= 1, frames to take.
        stride: int >= 1, step between frames (`dense`).
        sampling: `"dense"`: `num_frames` frames `stride` apart starting at `position` of the room left
            (0 = the start, 1 = the end); `"uniform"` (TSN): one frame per equal segment of the whole video, at
            `position` within each segment.
        position: float in [0, 1].

    Returns:
        int array `(num_frames,)`; a video too short repeats its last frame.

    Example:
    >>> sample_frame_indices(10, 4, stride=2, position=0.0).tolist()
    [0, 2, 4, 6]
    >>> sample_frame_indices(10, 4, stride=2, position=1.0).tolist()
    [3, 5, 7, 9]
    >>> sample_frame_indices(8, 4, sampling="uniform", position=0.5).tolist()
    [1, 3, 5, 7]
    >>> sample_frame_indices(3, 4).tolist()
    [0, 1, 2, 2]
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"`sampling` must be one of {SAMPLINGS}. Received: sampling={sampling!r}")
    if num_frames < 1 or stride < 1 or num_available < 1:
        raise ValueError(f"`num_frames`, `stride` and `num_available` must be >= 1. Received: {num_frames}, "
                         f"{stride}, {num_available}")
    position = min(max(float(position), 0.0), 1.0)
    if sampling == "dense":
        span = (num_frames - 1) * stride + 1
        start = int(round(position * max(num_available - span, 0)))
        indices = start + np.arange(num_frames) * stride
    else:
        segment = num_available / num_frames
        indices = np.floor(segment * (np.arange(num_frames) + min(position, 0.999))).astype(np.int64)
    return np.minimum(indices, num_available - 1).astype(np.int64)


def _resize(frame, max_side):
    height, width = frame.shape[:2]
    if max_side and min(height, width) > max_side:
        scale = max_side / min(height, width)
        frame = cv2.resize(frame, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
    return frame


def _frame_folder(path):
    return sorted(os.path.join(path, n) for n in os.listdir(path)
                  if not n.startswith(".") and n.lower().endswith(FRAME_EXTENSIONS))


def decode_clip(path, num_frames, stride=1, sampling="dense", position=0.5, max_side=None):
    """Reads the frames of one clip as RGB uint8 `(num_frames, H, W, 3)`.

    Args:
        path: a video file or a directory of frames.
        num_frames, stride, sampling, position: see `sample_frame_indices`.
        max_side: optional int; frames whose short side is larger are shrunk to it (area interpolation).

    Raises:
        VideoDecodeError: missing, unreadable or empty.
    """
    path = path.decode("utf-8", "surrogateescape") if isinstance(path, bytes) else str(path)
    if not os.path.exists(path):
        raise VideoDecodeError("missing", path)
    if os.path.isdir(path):
        files = _frame_folder(path)
        if not files:
            raise VideoDecodeError("no_frames", path)
        frames = []
        for index in sample_frame_indices(len(files), num_frames, stride, sampling, position):
            image = cv2.imread(files[index], cv2.IMREAD_COLOR)
            if image is None:
                raise VideoDecodeError("unreadable", files[index])
            frames.append(_resize(image[:, :, ::-1], max_side))
        return _stack(frames, path)
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise VideoDecodeError("unreadable", path)
        decoded = []
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        wanted = None
        if count > 0:  # read only up to the last frame needed
            wanted = sample_frame_indices(count, num_frames, stride, sampling, position)
        while True:
            if wanted is not None and len(decoded) > wanted.max():
                break
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            decoded.append(_resize(frame[:, :, ::-1], max_side))
    finally:
        capture.release()
    if not decoded:
        raise VideoDecodeError("unreadable", path)
    # The container's frame count can be wrong: sample from what was decoded.
    indices = sample_frame_indices(len(decoded), num_frames, stride, sampling, position) if (
        wanted is None or len(decoded) <= wanted.max()) else wanted
    return _stack([decoded[i] for i in indices], path)


def _stack(frames, path):
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:  # frames of different sizes (a frame folder): resize to the first one's
        height, width = frames[0].shape[:2]
        frames = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames]
    return np.ascontiguousarray(np.stack(frames).astype(np.uint8))

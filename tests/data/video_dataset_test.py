"""Video clips: listing, OpenCV / frame-folder decoding, sampling, per-clip augmentation, skips counted."""

import os

import cv2
import numpy as np
import pytest

from florence_keras.data.skip_counter import SkipCounter
from florence_keras.data.video_dataset import flip_label_map
from florence_keras.data.video_dataset import video_dataset
from florence_keras.data.video_decoding import decode_clip
from florence_keras.data.video_decoding import sample_frame_indices
from florence_keras.data.video_index import list_video_folder

CLASSES = ["moving_left", "moving_right"]


def _frames(num_frames=6, height=24, width=32):
    """Frame t: a vertical bar at column 2 + 3t on the left half of an otherwise grey frame (asymmetric)."""
    frames = np.full((num_frames, height, width, 3), 90, np.uint8)
    for t in range(num_frames):
        frames[t, :, 2 + 3 * t: 4 + 3 * t] = (250, 20, 20)
        frames[t, :4, -6:] = (20, 20, 250)  # a blue corner: flips are visible
    return frames


def _write_avi(path, frames):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 8.0, (frames.shape[2], frames.shape[1]))
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()


def _write_frame_folder(path, frames):
    os.makedirs(path, exist_ok=True)
    for t, frame in enumerate(frames):
        cv2.imwrite(os.path.join(path, f"{t:04d}.png"), np.ascontiguousarray(frame[:, :, ::-1]))


@pytest.fixture
def tree(tmp_path):
    frames = _frames()
    _write_avi(str(tmp_path / "moving_left" / "a.avi"), frames)
    _write_frame_folder(str(tmp_path / "moving_right" / "b"), frames)
    (tmp_path / "moving_right" / "broken.mp4").write_bytes(b"not a video")
    return tmp_path, frames


def test_sampling_by_hand():
    assert sample_frame_indices(20, 4, stride=3, position=0.0).tolist() == [0, 3, 6, 9]
    assert sample_frame_indices(20, 4, stride=3, position=1.0).tolist() == [10, 13, 16, 19]
    assert sample_frame_indices(12, 3, sampling="uniform", position=0.0).tolist() == [0, 4, 8]
    assert sample_frame_indices(2, 3).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="sampling"):
        sample_frame_indices(5, 2, sampling="random")


def test_listing_and_decoding_both_layouts(tree):
    root, frames = tree
    paths, labels, classes = list_video_folder(str(root))
    assert classes == CLASSES and labels == [0, 1, 1]
    assert [os.path.basename(p) for p in paths] == ["a.avi", "b", "broken.mp4"]
    folder = decode_clip(paths[1], num_frames=3, stride=2, position=0.0)
    np.testing.assert_array_equal(folder, frames[[0, 2, 4]])  # PNG frames: lossless
    video = decode_clip(paths[0], num_frames=3, stride=2, position=0.0)
    assert video.shape == (3, 24, 32, 3)
    assert np.abs(video.astype(int) - frames[[0, 2, 4]]).mean() < 6  # MJPG is lossy


def test_flip_label_map():
    assert flip_label_map(["moving down", "moving left", "moving right", "moving up"]) == [0, 2, 1, 3]
    assert flip_label_map(["cat", "dog"]) == [0, 1]
    assert flip_label_map(["turn_left", "stop"]) is None


def test_eval_views_and_skips(tree):
    root, frames = tree
    paths, labels, classes = list_video_folder(str(root))
    counter = SkipCounter()
    ds = video_dataset(paths, labels, num_frames=2, image_size=24, batch_size=4, training=False,
                       temporal_views=2, spatial_views=3, skip_counter=counter)
    batches = list(ds)
    assert len(batches) == 1 and batches[0]["videos"].shape == (2, 6, 2, 24, 24, 3)
    assert batches[0]["index"].numpy().tolist() == [0, 1] and counter.count == 1
    assert counter.first_sources[0][0].endswith("broken.mp4")
    views = batches[0]["videos"].numpy()[1]  # the lossless frame folder
    # temporal views at the start and the end; spatial crops 24x24 at the left, middle and right of 32 columns
    np.testing.assert_array_equal(views[0], frames[[0, 1], :, 0:24])
    np.testing.assert_array_equal(views[2], frames[[0, 1], :, 8:32])
    np.testing.assert_array_equal(views[5], frames[[4, 5], :, 8:32])


def test_training_crops_and_flips_every_frame_alike_and_swaps_mirrored_labels(tmp_path):
    frames = _frames(num_frames=4, height=24, width=24)
    _write_frame_folder(str(tmp_path / "clip"), frames)
    ds = video_dataset([str(tmp_path / "clip")] * 2, [0, 1], num_frames=4, image_size=24, batch_size=2,
                       training=True, min_scale=1.0, seed=3, class_names=CLASSES)
    flips = set()
    for batch in ds.take(8):
        for videos, label, original in zip(batch["videos"].numpy(), batch["labels"].numpy(),
                                           batch["index"].numpy()):
            flipped = np.array_equal(videos, frames[:, :, ::-1])
            assert flipped or np.array_equal(videos, frames)  # the whole clip, or the whole clip mirrored
            assert label == (1 - original if flipped else original)  # left <-> right when mirrored
            flips.add(flipped)
    assert flips == {True, False}


def test_unmirrorable_classes_turn_flips_off(tmp_path):
    frames = _frames(num_frames=2, height=16, width=16)
    _write_frame_folder(str(tmp_path / "clip"), frames)
    ds = video_dataset([str(tmp_path / "clip")], [0], num_frames=2, image_size=16, batch_size=1, training=True,
                       min_scale=1.0, class_names=["turn_left", "stop"])
    for batch in ds.take(6):
        np.testing.assert_array_equal(batch["videos"].numpy()[0], frames)

"""Bad examples in every reader kind are skipped and counted exactly, with their reasons; never a crash."""

import io
import os
import tarfile

import cv2
import numpy as np
import pytest
import tensorflow as tf

from florence_keras.data import guarded_decode
from florence_keras.data import skip_counter as skip_counter_lib
from florence_keras.data.image_records import load_image_records
from florence_keras.data.image_text_dataset import load_image_text_dataset
from florence_keras.data.skip_counter import SkipCounter
from florence_keras.data.tfrecord_example import make_image_text_example

RNG = np.random.default_rng(2)
RGB = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)


def _encode(ext, image):
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


def _bad_images():
    """name -> (bytes, expected reason); None bytes = the file is not written (missing)."""
    jpeg = _encode(".jpg", RGB)
    png = bytearray(_encode(".png", RGB))
    png[60:90] = bytes(30)
    bomb = bytearray(_encode(".png", RGB))
    bomb[16:24] = (50_000).to_bytes(4, "big") * 2
    garbage_jpeg = jpeg[:200] + bytes(RNG.integers(0, 256, 300, dtype=np.uint8)) + b"\xff\xd9"
    return {
        "empty.jpg": (b"", "empty"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "corrupt.png": (bytes(png), "corrupt"),
        "garbage.jpg": (garbage_jpeg, "corrupt"),
        "missing.jpg": (None, "missing"),
        "notes.jpg": (b"these are not pixels", "not_an_image"),
        "bomb.png": (bytes(bomb), "too_large"),
    }


def _good_images():
    """name -> (bytes, expected RGB pixels)."""
    gray, deep = RGB[..., 1], RGB[..., 2].astype(np.uint16) * 257
    rgba = np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 9, np.uint8)])
    return {
        "rgb.png": (_encode(".png", RGB[..., ::-1]), RGB),
        "gray.png": (_encode(".png", gray), np.repeat(gray[..., None], 3, axis=2)),
        "rgba.png": (_encode(".png", rgba), RGB),
        "deep.png": (_encode(".png", deep), np.repeat(RGB[..., 2:3], 3, axis=2)),
        "photo.jpg": (_encode(".jpg", RGB), None),
    }


def _write_csv_dataset(root):
    rows, expected_reasons, good = [], {}, {}
    bad, fine = _bad_images(), _good_images()
    names = ["rgb.png", "empty.jpg", "truncated.jpg", "gray.png", "corrupt.png", "missing.jpg", "rgba.png",
             "notes.jpg", "bomb.png", "deep.png", "garbage.jpg", "photo.jpg"]
    for name in names:
        data = bad[name][0] if name in bad else fine[name][0]
        if data is not None:
            (root / name).write_bytes(data)
        rows.append(f"{name},caption of {name}")
        if name in bad:
            expected_reasons[bad[name][1]] = expected_reasons.get(bad[name][1], 0) + 1
        else:
            good[f"caption of {name}"] = fine[name][1]
    (root / "nocaption.png").write_bytes(fine["rgb.png"][0])
    rows.append("nocaption.png,")
    expected_reasons["no_text"] = 1
    (root / "data.csv").write_text("filepath,caption\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(root / "data.csv"), expected_reasons, good


def test_csv_bad_files_are_skipped_counted_and_logged_once(tmp_path, monkeypatch):
    path, expected_reasons, good = _write_csv_dataset(tmp_path)
    lines = []
    monkeypatch.setattr(skip_counter_lib.logging, "warning", lambda fmt, *args: lines.append(fmt % args))
    counter = SkipCounter(max_examples=3, name="csv")
    examples = list(load_image_text_dataset(path, "csv", training=False, skip_counter=counter))
    assert counter.count == sum(expected_reasons.values()) == 8
    assert counter.reasons == expected_reasons
    assert [os.path.basename(s) for s, _ in counter.first_sources] == ["empty.jpg", "truncated.jpg", "corrupt.png"]
    assert len(lines) == 1 and "csv: skipped 8" in lines[0] and "empty.jpg (empty)" in lines[0]
    assert [e["texts"].numpy().decode() for e in examples] == list(good)
    for example in examples:
        expected = good[example["texts"].numpy().decode()]
        assert example["images"].shape[-1] == 3
        if expected is not None:
            np.testing.assert_array_equal(example["images"].numpy(), expected)


def test_failures_at_every_position_of_small_groups_are_counted(tmp_path):
    """The gap bookkeeping, with groups of 2: failures first, last, consecutive and across group borders."""
    path, expected_reasons, good = _write_csv_dataset(tmp_path)
    from florence_keras.data.csv_index import read_csv_index
    paths, texts = read_csv_index(path, ("filepath", "caption"))
    pointers = tf.data.Dataset.from_tensor_slices(guarded_decode.make_pointers(paths, paths, texts=texts))
    for group_size in (1, 2, 5):
        counter = SkipCounter()
        decoded = guarded_decode.decode_pointers(pointers, "file", counter, group_size=group_size)
        assert [e["texts"].numpy().decode() for e in decoded] == list(good)
        assert counter.reasons == expected_reasons


def _tar_member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_webdataset_bad_samples_are_skipped_and_counted(tmp_path):
    jpeg = _encode(".jpg", RGB)
    bad = _bad_images()
    with tarfile.open(tmp_path / "a.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, image in [("good1", jpeg), ("empty", b""), ("corrupt", bad["corrupt.png"][0]),
                           ("notes", bad["notes.jpg"][0]), ("good2", jpeg)]:
            _tar_member(tar, f"{key}.jpg", image)
            _tar_member(tar, f"{key}.txt", f"text {key}".encode())
        _tar_member(tar, "textless.jpg", jpeg)
        _tar_member(tar, "imageless.txt", b"no image")
    with tarfile.open(tmp_path / "b.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        _tar_member(tar, "good3.txt", b"text good3")
        _tar_member(tar, "good3.jpg", jpeg)
        _tar_member(tar, "cut.txt", b"text cut")
        _tar_member(tar, "cut.jpg", jpeg)
    with tarfile.open(tmp_path / "b.tar") as tar:
        cut = tar.getmember("cut.jpg").offset_data + len(jpeg) // 2
    (tmp_path / "b.tar").write_bytes((tmp_path / "b.tar").read_bytes()[:cut])  # cut inside cut.jpg's data
    with tarfile.open(tmp_path / "c.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        _tar_member(tar, "good4.txt", b"text good4")
        _tar_member(tar, "good4.jpg", jpeg)
        _tar_member(tar, "lost.txt", b"text lost")
    with tarfile.open(tmp_path / "c.tar") as tar:
        cut = tar.getmember("lost.txt").offset  # the archive ends cleanly before a header: tarfile sees no error
    (tmp_path / "c.tar").write_bytes((tmp_path / "c.tar").read_bytes()[:cut])
    counter = SkipCounter(max_examples=20)
    records = list(load_image_records(f"{tmp_path}/{{a,b,c}}.tar", "wds", skip_counter=counter))
    assert [r["texts"].numpy() for r in records] == [b"text good1", b"text good2", b"text good3", b"text good4"]
    assert counter.reasons == {"empty": 1, "corrupt": 1, "not_an_image": 1, "no_text": 1, "no_image": 1,
                               "truncated": 2}
    assert (f"{tmp_path}/c.tar", "truncated") in counter.first_sources
    assert (f"{tmp_path}/b.tar:cut", "truncated") in counter.first_sources
    assert (f"{tmp_path}/a.tar:textless", "no_text") in counter.first_sources


def test_tfrecord_bad_records_and_a_truncated_file_are_skipped_and_counted(tmp_path):
    jpeg = _encode(".jpg", RGB)
    with tf.io.TFRecordWriter(str(tmp_path / "a.tfrecord")) as writer:
        writer.write(make_image_text_example(jpeg, caption="good 1"))
        writer.write(make_image_text_example(_bad_images()["corrupt.png"][0], caption="corrupt image"))
        writer.write(b"\xff\xff\xff not an Example")
        writer.write(make_image_text_example(jpeg))
        writer.write(make_image_text_example(jpeg, class_name="circle"))
    with tf.io.TFRecordWriter(str(tmp_path / "b.tfrecord")) as writer:
        for i in range(3):
            writer.write(make_image_text_example(jpeg, caption=f"b {i}"))
    data = (tmp_path / "b.tfrecord").read_bytes()
    (tmp_path / "b.tfrecord").write_bytes(data[:-40])
    counter = SkipCounter()
    records = list(load_image_records(str(tmp_path), "tfrecord", skip_counter=counter))
    assert [(r["texts"].numpy(), r["class_names"].numpy()) for r in records] == [
        (b"good 1", b""), (b"", b"circle"), (b"b 0", b""), (b"b 1", b"")]
    assert counter.reasons == {"corrupt": 1, "corrupt_record": 1, "no_text": 1, "corrupt_file": 1}
    assert any("b.tfrecord (unreadable after 2 records)" in source for source, _ in counter.first_sources)


def test_the_pixel_limit_can_be_raised_and_lowered(tmp_path):
    (tmp_path / "a.png").write_bytes(_encode(".png", RGB))
    (tmp_path / "d.csv").write_text("filepath,caption\na.png,x\n", encoding="utf-8")
    counter = SkipCounter()
    assert not list(load_image_records(str(tmp_path / "d.csv"), "csv", skip_counter=counter, max_image_pixels=599))
    assert counter.reasons == {"too_large": 1}
    assert len(list(load_image_records(str(tmp_path / "d.csv"), "csv", max_image_pixels=600))) == 1
    with pytest.raises(ValueError, match="max_pixels"):
        load_image_records(str(tmp_path / "d.csv"), "csv", max_image_pixels=0)

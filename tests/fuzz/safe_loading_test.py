"""Safe loading: nothing read from a file runs code, writes outside its folder, or allocates what a header claims.

* Presets and `.keras` files load in Keras safe mode: a `Lambda` layer (Python bytecode) or a class that is not
  registered is refused with `ValueError` (for a preset: `PresetFileError` naming the file and the object), and no
  code from the file runs (a marker file never appears). The preset cases re-write the manifest after the edit, as
  an attacker would: the refusal must not depend on the manifest.
* Checkpoints are read without pickle code execution: a `pytorch_model.bin` whose pickle would create a marker
  file is refused (`torch.load(weights_only=True)`), as is a safetensors index naming shards outside the folder.
* webdataset tars are never extracted: members with absolute names, `..`, or links pointing outside are counted
  skips (`unsafe_path`, `no_image`), and reading writes nothing anywhere.
* Decompression bombs (a PNG or JPEG header declaring 50,000 x 50,000 pixels) are refused with a counted
  `too_large` skip by default; `max_image_pixels` raises the limit.
"""

import io
import json
import os
import pickle
import shutil
import struct
import tarfile
import zipfile

import keras
import numpy as np
import pytest

from tests.test_extras import require
import tensorflow as tf

from florence_keras.converters.checkpoint_reader import CheckpointReader
from florence_keras.data import DEFAULT_MAX_PIXELS
from florence_keras.data import load_image_text_dataset
from florence_keras.data.image_records import load_image_records
from florence_keras.data.skip_counter import SkipCounter
from florence_keras.models import preset_manifest
from florence_keras.models.florence_clip import FlorenceCLIP
from florence_keras.models.preset_files import PresetFileError
from tests.fuzz.fuzz_support import image_samples
from tests.fuzz.fuzz_support import png_with_size


class _MarkerPayload:
    """Pickles to a call that creates `path` when unpickled (what a malicious checkpoint does)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _lambda_layer_config(marker):
    """A serialized `Lambda` layer whose function would create `marker` when called."""
    path = str(marker)
    layer = keras.layers.Lambda(lambda x: (open(path, "w").close(), x)[1])
    return keras.saving.serialize_keras_object(layer)


# --- Keras safe mode ----------------------------------------------------------------------------------------------


def test_keras_file_with_a_lambda_layer_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = str(tmp_path / "model.keras")
    layer = _lambda_layer_config(marker)
    with zipfile.ZipFile(path, "w") as archive:
        config = {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": [
            {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 2],
                                                                             "dtype": "float32"}},
            layer,
        ]}, "registered_name": None}
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", json.dumps({"keras_version": keras.__version__}))
    with pytest.raises(ValueError, match="(?i)lambda|unsafe|safe_mode"):
        keras.saving.load_model(path)
    assert not marker.exists()


@pytest.fixture(scope="module")
def saved_preset(tiny_clip, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("safe_preset") / "preset")
    tiny_clip.save_to_preset(directory)
    return directory


def _rewrite(directory, name, edit):
    path = os.path.join(directory, name)
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    document = edit(document)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f)
    preset_manifest.write_manifest(directory)  # re-signed: only the config checks stand in the way


@pytest.mark.parametrize("file_name", ["config.json", "task.json"])  # the files from_preset deserializes
def test_preset_with_a_lambda_layer_is_refused(saved_preset, tmp_path, file_name):
    marker = tmp_path / "pwned"
    directory = str(tmp_path / "preset")
    shutil.copytree(saved_preset, directory)
    _rewrite(directory, file_name, lambda _: _lambda_layer_config(marker))
    with pytest.raises(PresetFileError, match=f"{file_name}.*the class 'Lambda' .*not a registered florence_keras class"):
        FlorenceCLIP.from_preset(directory)
    assert not marker.exists()


@pytest.mark.parametrize("file_name", ["config.json", "task.json"])  # the files from_preset deserializes
def test_preset_naming_an_unregistered_class_is_refused(saved_preset, tmp_path, monkeypatch, file_name):
    # A module that would create a marker file when imported: Keras never imports modules named by a file
    # outside its own packages, and never calls an unregistered class.
    marker = tmp_path / "pwned"
    (tmp_path / "evil_preset_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Evil: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    directory = str(tmp_path / "preset")
    shutil.copytree(saved_preset, directory)

    def evil(document):
        document.update(module="evil_preset_module", class_name="Evil", registered_name="evil>Evil")
        return document

    _rewrite(directory, file_name, evil)
    with pytest.raises(PresetFileError, match=f"{file_name}.*the class 'Evil' .*'evil>Evil'.*not a registered florence_keras class"):
        FlorenceCLIP.from_preset(directory)
    assert not marker.exists()


# --- Checkpoints without pickle code ---------------------------------------------------------------------------


def test_pickled_code_in_a_torch_checkpoint_is_refused(tmp_path):
    torch = require("torch")
    marker = tmp_path / "pwned"
    for index, writer in enumerate((
        lambda path: torch.save({"weight": torch.zeros(2), "payload": _MarkerPayload(str(marker))}, path),
        lambda path: open(path, "wb").write(pickle.dumps({"payload": _MarkerPayload(str(marker))})),
    )):
        directory = tmp_path / f"checkpoint{index}"
        directory.mkdir()
        writer(str(directory / "pytorch_model.bin"))
        with pytest.raises(ValueError, match="Refused or unreadable"):
            CheckpointReader(str(directory))
        assert not marker.exists()


def test_a_plain_torch_state_dict_still_loads(tmp_path):
    torch = require("torch")
    torch.save({"weight": torch.ones(2, 3)}, str(tmp_path / "pytorch_model.bin"))
    np.testing.assert_array_equal(CheckpointReader(str(tmp_path)).get("weight"), np.ones((2, 3), np.float32))


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/etc/passwd", "sub/../../outside.safetensors"])
def test_safetensors_index_naming_files_outside_the_folder_is_refused(tmp_path, shard):
    from safetensors.numpy import save_file

    save_file({"weight": np.ones(2, np.float32)}, str(tmp_path / "outside.safetensors"))
    directory = tmp_path / "checkpoint"
    directory.mkdir()
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"weight": shard}}))
    with pytest.raises(ValueError, match="refused"):
        CheckpointReader(str(directory))


def test_damaged_safetensors_raise_value_error(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "model.safetensors"
    save_file({"weight": np.ones(2, np.float32)}, str(path))
    data = bytearray(path.read_bytes())
    data[:8] = struct.pack("<Q", 2**62)  # header length forged huge
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="Could not read safetensors file .*model.safetensors"):
        CheckpointReader(str(tmp_path))


# --- Tar members never leave their folder ---------------------------------------------------------------------


def test_tar_members_escaping_the_folder_are_counted_and_nothing_is_written(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    image = image_samples()[0]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, data=None, kind=tarfile.REGTYPE, link=""):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            info.size = len(data) if data is not None else 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        add("good.jpg", image), add("good.txt", b"a good sample")
        add("../escape.jpg", image), add("../escape.txt", b"up")
        add(str(tmp_path / "absolute.jpg"), image), add(str(tmp_path / "absolute.txt"), b"absolute")
        add("a/../../deep.jpg", image), add("a/../../deep.txt", b"deep")
        add("link.jpg", kind=tarfile.SYMTYPE, link="/etc/passwd"), add("link.txt", b"a link")
        add("hard.jpg", kind=tarfile.LNKTYPE, link="../escape.jpg"), add("hard.txt", b"a hard link")
    shard = work / "shard.tar"
    shard.write_bytes(buffer.getvalue())
    before = sorted(p for p in tmp_path.rglob("*"))

    def no_extraction(*args, **kwargs):
        raise AssertionError("tar members must never be extracted")

    monkeypatch.setattr(tarfile.TarFile, "extract", no_extraction)
    monkeypatch.setattr(tarfile.TarFile, "extractall", no_extraction)
    counter = SkipCounter(max_examples=20)
    records = list(load_image_records(str(shard), "wds", skip_counter=counter, log_skips_each_epoch=False))
    assert [r["texts"].numpy() for r in records] == [b"a good sample"]
    assert counter.reasons["unsafe_path"] == 6  # three escaping samples, image and text each
    assert counter.reasons["no_image"] == 2  # the symlink and the hardlink samples: links are never read
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not (tmp_path / "escape.jpg").exists() and not (tmp_path / "absolute.jpg").exists()


# --- Decompression bombs -----------------------------------------------------------------------------------------


def _jpeg_with_size(height, width):
    data = bytearray(tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)).numpy())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _csv_dataset(directory, images):
    for name, data in images.items():
        (directory / name).write_bytes(data)
    index = directory / "index.csv"
    index.write_text("filepath,caption\n" + "".join(f"{name},an image\n" for name in images))
    return str(index)


def test_decompression_bombs_are_refused_by_default_and_counted(tmp_path):
    index = _csv_dataset(tmp_path, {"bomb.png": png_with_size(50_000, 50_000),
                                    "bomb.jpg": _jpeg_with_size(50_000, 50_000),
                                    "fine.png": image_samples()[0]})
    counter = SkipCounter()
    records = list(load_image_records(index, "csv", skip_counter=counter, log_skips_each_epoch=False))
    assert len(records) == 1 and counter.reasons == {"too_large": 2}
    assert 50_000 * 50_000 > DEFAULT_MAX_PIXELS


def test_the_pixel_limit_is_a_parameter_that_can_be_raised(tmp_path):
    # A real 3000 x 3000 PNG (9M pixels, a few kB): refused under a 1M limit, decoded when the limit is raised.
    large = tf.io.encode_png(np.zeros((3000, 3000, 1), np.uint8)).numpy()
    assert len(large) < 100_000
    index = _csv_dataset(tmp_path, {"large.png": large})
    refused = SkipCounter()
    assert list(load_image_records(index, "csv", skip_counter=refused, max_image_pixels=1_000_000,
                                   log_skips_each_epoch=False)) == []
    assert refused.reasons == {"too_large": 1}
    accepted = SkipCounter()
    dataset = load_image_text_dataset(index, "csv", image_size=16, training=False, skip_counter=accepted,
                                      max_image_pixels=10_000_000, log_skips_each_epoch=False)
    assert len(list(dataset)) == 1 and accepted.count == 0


def test_served_graph_refuses_a_bomb_by_default(served_model):
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_image_pixels"):
        served_model.signatures["encode_image_bytes"](image_bytes=tf.constant([png_with_size(50_000, 50_000)]))

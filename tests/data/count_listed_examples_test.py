"""count_listed_examples: the examples an index lists (what the reader then yields or skips), without reading images."""

import json
import os

from florence_keras.data.builtin_dataset import write_builtin_dataset
from florence_keras.data.image_records import count_listed_examples
from florence_keras.data.image_records import load_image_records
from florence_keras.data.skip_counter import SkipCounter


def test_counts_match_what_the_reader_yields_or_skips(tmp_path):
    paths = write_builtin_dataset(str(tmp_path / "data"), num_train=5, num_heldout=0, formats=("csv", "imagefolder"))
    for data_format in ("csv", "imagefolder"):
        counter = SkipCounter()
        read = sum(1 for _ in load_image_records(paths[data_format]["train"], data_format, skip_counter=counter))
        assert count_listed_examples(paths[data_format]["train"], data_format) == read + counter.count == 5


def test_rows_that_are_not_files_are_not_counted_and_shards_are_unknown(tmp_path):
    os.mkfifo(str(tmp_path / "pipe.png"))
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "index.csv").write_text("filepath,caption\na.png,one\npipe.png,two\nmissing.png,three\n")
    assert count_listed_examples(str(tmp_path / "index.csv"), "csv") == 2  # the FIFO is left out, missing counts
    coco = {"images": [{"id": 1, "file_name": "a.png"}],
            "annotations": [{"image_id": 1, "caption": "c1"}, {"image_id": 1, "caption": "c2"}]}
    (tmp_path / "captions.json").write_text(json.dumps(coco))
    assert count_listed_examples(str(tmp_path / "captions.json"), "coco") == 2
    (tmp_path / "d.tfrecord").write_bytes(b"")
    assert count_listed_examples(str(tmp_path / "d.tfrecord"), "tfrecord") is None

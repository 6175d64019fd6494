"""Index entries with their own format (`FORMAT:PATH`): captions and labels joined in one training set."""

import pytest

from florence_keras.data.builtin_dataset import write_builtin_dataset
from florence_keras.data.image_records import count_listed_examples
from florence_keras.data.image_records import index_entries
from florence_keras.data.image_records import load_image_records


@pytest.fixture(scope="module")
def builtin(tmp_path_factory):
    return write_builtin_dataset(str(tmp_path_factory.mktemp("builtin")), num_train=6, num_heldout=0,
                                 formats=("csv", "imagefolder"), image_size=32)


def test_entries_take_their_own_format(builtin):
    csv, folder = builtin["csv"]["train"], builtin["imagefolder"]["train"]
    assert index_entries([csv, "imagefolder:" + folder], "csv") == [("csv", csv), ("imagefolder", folder)]
    assert index_entries(f"{csv}, imagefolder:{folder}", "csv") == [("csv", csv), ("imagefolder", folder)]
    with pytest.raises(FileNotFoundError, match="tfrecord:"):
        index_entries(["tfrecord:" + csv], "csv")  # not an index format's prefix: the whole string is a path
    with pytest.raises(ValueError, match="Only index formats"):
        index_entries([csv], "tfrecord")


def test_captions_and_labels_in_one_stream(builtin):
    paths = [builtin["csv"]["train"], "imagefolder:" + builtin["imagefolder"]["train"]]
    assert count_listed_examples(paths, "csv") == 12
    records = list(load_image_records(paths, "csv").as_numpy_iterator())
    captioned = [r for r in records if r["texts"]]
    labelled = [r for r in records if r["class_names"]]
    assert len(captioned) == len(labelled) == 6
    assert {r["class_names"].decode() for r in labelled} <= set(builtin["class_names"])
    assert all(not r["class_names"] for r in captioned) and all(not r["texts"] for r in labelled)

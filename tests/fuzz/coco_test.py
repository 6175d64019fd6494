"""Fuzzing of COCO captions JSON: the parser (`read_coco_captions`) and the coco pipeline.

Property: every document either parses into equal-length lists of str or raises `DataFormatError` — whatever its
JSON types (ids that are lists or objects, captions that are numbers), nesting (thousands deep), number sizes or
bytes; the pipeline yields images or counts documented skips for every annotation.
"""

import json
import os

from hypothesis import example
from hypothesis import given
from hypothesis import strategies as st

from florence_keras.data.coco_captions_index import read_coco_captions
from florence_keras.data.data_format_error import DataFormatError
from tests.fuzz import fuzz_support
from tests.fuzz.fuzz_support import case_timeout
from tests.fuzz.fuzz_support import fuzz_settings
from tests.fuzz.fuzz_support import nasty_text

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), nasty_text(),
)
json_values = st.recursive(json_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(nasty_text(8), children, max_size=4)), max_leaves=12)
ids = st.one_of(st.integers(-2, 5), st.sampled_from(["1", "a", 1.0, True]), json_values)


@st.composite
def near_valid_document(draw):
    """A valid COCO document, with one entry (or none) replaced by a hostile JSON value."""
    images = [{"id": i, "file_name": draw(nasty_text())} for i in range(draw(st.integers(0, 4)))]
    annotations = [{"image_id": draw(st.integers(0, max(len(images) - 1, 0))), "caption": draw(nasty_text())}
                   for _ in range(draw(st.integers(0, 5)))]
    document = {"images": images, "annotations": annotations}
    if draw(st.booleans()):
        key = draw(st.sampled_from(("images", "annotations")))
        if document[key]:
            index = draw(st.integers(0, len(document[key]) - 1))
            field = draw(st.sampled_from(sorted(document[key][index])))
            document[key][index][field] = draw(json_values)
    return json.dumps(document, allow_nan=True).encode()


@st.composite
def coco_document(draw):
    """A COCO-shaped document with the wrong type, a missing key or a dangling id here and there."""
    images = draw(st.lists(st.one_of(
        st.fixed_dictionaries({"id": ids, "file_name": st.one_of(nasty_text(), json_values)}),
        st.fixed_dictionaries({"id": st.integers(0, 5), "file_name": st.just("0.png")}),
        json_values,
    ), max_size=5))
    annotations = draw(st.lists(st.one_of(
        st.fixed_dictionaries({"image_id": ids, "caption": st.one_of(nasty_text(), json_values)}),
        st.fixed_dictionaries({"image_id": st.integers(0, 5), "caption": nasty_text()}),
        json_values,
    ), max_size=6))
    document = draw(st.one_of(
        st.just({"images": images, "annotations": annotations}),
        st.just({"images": images}),
        st.just([images, annotations]),
        st.builds(lambda extra: {"images": images, "annotations": annotations, "info": extra}, json_values),
    ))
    return json.dumps(document, allow_nan=True, indent=draw(st.sampled_from((None, 1)))).encode()


VALID = json.dumps({"images": [{"id": 1, "file_name": "a.png"}],
                    "annotations": [{"image_id": 1, "caption": "a cat"}]}).encode()
coco_bytes = st.one_of(
    coco_document(),
    near_valid_document(),
    near_valid_document(),
    st.binary(max_size=200),
    fuzz_support.mutated(VALID),
    st.integers(1, 200_000).map(lambda depth: ("[" * depth + "]" * depth).encode()),  # deep nesting
    st.integers(4000, 6000).map(lambda digits: b'{"images": [], "annotations": [], "n": ' + b"7" * digits + b"}"),
    st.sampled_from((b"", b"\xef\xbb\xbf", b"null", b"NaN", b'{"images": {}, "annotations": []}', b"\xff\xfe{}")),
)


def _write(directory, data):
    path = os.path.join(str(directory), "captions.json")
    with open(path, "wb") as f:
        f.write(data)
    return path


@fuzz_settings(fast=200)
@given(data=coco_bytes)
# Found by fuzzing; each escaped as a non-DataFormatError before the fix:
@example(data=b"[" * 100_000 + b"]" * 100_000)  # RecursionError
@example(data=b'{"images": [{"id": [1], "file_name": "a"}], "annotations": []}')  # TypeError: unhashable
@example(data=b'{"images": [], "annotations": [{"image_id": {}, "caption": "c"}]}')  # TypeError: unhashable
@example(data=b'{"images": [], "annotations": [], "n": ' + b"9" * 5000 + b"}")  # ValueError: int digits
def test_read_coco_captions_parses_or_raises_data_format_error(tmp_path_factory, data):
    path = _write(tmp_path_factory.mktemp("coco"), data)
    with case_timeout("coco"):
        try:
            paths, captions = read_coco_captions(path)
        except DataFormatError as error:
            assert error.path == path and len(str(error)) < 2000
            fuzz_support.record("coco", "error:DataFormatError")
            return
    assert len(paths) == len(captions)
    assert all(isinstance(p, str) for p in paths) and all(isinstance(c, str) for c in captions)
    fuzz_support.record("coco", "data" if paths else "no_rows")


@st.composite
def coco_dataset(draw):
    files = draw(st.lists(fuzz_support.image_like_bytes(), min_size=1, max_size=3))
    names = [f"{i}.img" for i in range(len(files))] + ["missing.png", "../up.png", "/", "", "pipe.fifo"]
    images = [{"id": i, "file_name": name} for i, name in enumerate(names)]
    annotations = draw(st.lists(st.fixed_dictionaries({
        "image_id": st.integers(0, len(names) - 1),
        "caption": st.one_of(nasty_text(), fuzz_support.long_text()),
    }), min_size=1, max_size=6))
    return files, {"images": images, "annotations": annotations}


@fuzz_settings(fast=3, share=0.1)
@given(case=coco_dataset())
def test_coco_pipeline_yields_or_counts_every_annotation(tmp_path_factory, case):
    files, document = case
    root = tmp_path_factory.mktemp("coco_pipeline")
    for i, data in enumerate(files):
        with open(os.path.join(str(root), f"{i}.img"), "wb") as f:
            f.write(data)
    fifo = os.path.join(str(root), "pipe.fifo")
    os.mkfifo(fifo)  # reading it would block for ever
    path = _write(root, json.dumps(document).encode())
    with case_timeout("coco"), fuzz_support.FifoWatch([fifo]) as watch:
        result = fuzz_support.drain_records(path, "coco")
    fuzz_support.record_drain("coco", result)
    count, counter, error = result
    assert not watch.opened, "the reader opened a FIFO"
    assert error is None, error
    assert count + counter.count == len(document["annotations"])
    fifo_id = document["images"][-1]["id"]
    fifo_rows = sum(annotation["image_id"] == fifo_id for annotation in document["annotations"])
    assert counter.reasons.get("not_a_file", 0) >= fifo_rows

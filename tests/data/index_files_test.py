"""CSV/TSV, COCO JSON, ImageFolder and path-pattern parsing (pure Python, no tf.data)."""

import json
import os

import pytest

from florence_keras.data.coco_captions_index import read_coco_captions
from florence_keras.data.csv_index import read_csv_index
from florence_keras.data.csv_index import to_bytes
from florence_keras.data.data_format_error import DataFormatError
from florence_keras.data.file_patterns import expand_braces
from florence_keras.data.file_patterns import expand_paths
from florence_keras.data.image_folder_index import list_image_folder


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_csv_quoting_relative_paths_and_column_order(tmp_path):
    path = _write(tmp_path / "a.csv", 'caption,filepath\n"a ""quoted"", comma, caption",img/1.jpg\n'
                                     '"two\nlines",/abs/2.jpg\n\nplain,gs://bucket/3.jpg\n')
    paths, captions = read_csv_index(path, ("filepath", "caption"))
    assert paths == [f"{tmp_path}/img/1.jpg", "/abs/2.jpg", "gs://bucket/3.jpg"]
    assert captions == ['a "quoted", comma, caption', "two\nlines", "plain"]
    paths, _ = read_csv_index(path, ("filepath", "caption"), image_root="/root")
    assert paths[0] == "/root/img/1.jpg"


def test_tsv_has_no_quoting(tmp_path):
    path = _write(tmp_path / "a.tsv", 'filepath\tcaption\n1.jpg\t"a quote" and, commas\n')
    _, captions = read_csv_index(path, ("filepath", "caption"), delimiter="\t")
    assert captions == ['"a quote" and, commas']


@pytest.mark.parametrize("text, line, message", [
    ("filepath,title\n1.jpg,a\n", 1, "lacks column"),
    ("filepath,caption\n1.jpg,a\n2.jpg,b,extra\n", 3, "expected 2 fields"),
    ("filepath,caption\n1.jpg,a\n,b\n", 3, "empty 'filepath'"),
    ('filepath,caption\n1.jpg,"unclosed\n2.jpg,b\n', 2, "CSV"),
    ("", None, "empty"),
])
def test_malformed_csv_names_file_and_line(tmp_path, text, line, message):
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(DataFormatError, match=message) as info:
        read_csv_index(path, ("filepath", "caption"))
    assert info.value.path == path and info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}:" if line else f"{path}:")


def test_invalid_utf8_is_kept_byte_for_byte(tmp_path):
    # One bad caption must cost one record, not the file: the bytes survive for the pipeline to count.
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\xef\xbb\xbffilepath,caption\n1.jpg,ok\n2.jpg,a \xff\xfe b\n")
    paths, captions = read_csv_index(str(path), ("filepath", "caption"))
    assert [to_bytes(c) for c in captions] == [b"ok", b"a \xff\xfe b"]
    assert [to_bytes(p) for p in paths] == [str(tmp_path / "1.jpg").encode(), str(tmp_path / "2.jpg").encode()]


def _coco(images, annotations):
    return json.dumps({"images": images, "annotations": annotations}, indent=1)


def test_coco_captions_one_pair_per_annotation(tmp_path):
    path = _write(tmp_path / "captions.json", _coco(
        [{"id": 7, "file_name": "a.jpg"}, {"id": 9, "file_name": "sub/b.jpg"}],
        [{"image_id": 9, "caption": " a dog "}, {"image_id": 7, "caption": "a cat"}, {"image_id": 9, "caption": "x"}]))
    paths, captions = read_coco_captions(path)
    assert paths == [f"{tmp_path}/sub/b.jpg", f"{tmp_path}/a.jpg", f"{tmp_path}/sub/b.jpg"]
    assert captions == ["a dog", "a cat", "x"]
    assert read_coco_captions(path, image_root="/images")[0][1] == "/images/a.jpg"


def test_malformed_coco_names_file_and_line(tmp_path):
    text = _coco([{"id": 1, "file_name": "a.jpg"}],
                 [{"image_id": 1, "caption": "fine"}, {"image_id": 2, "caption": "unknown image"}])
    path = _write(tmp_path / "c.json", text)
    lines = text.splitlines()
    expected_line = next(i for i, line in enumerate(lines) if '"image_id": 2' in line)  # the "{" line above it
    with pytest.raises(DataFormatError, match=r"annotations\[1\]: image_id 2") as info:
        read_coco_captions(path)
    assert info.value.line == expected_line
    path = _write(tmp_path / "d.json", '{"images": [],\n "annotations": [\n {"image_id": 1,}\n]}')
    with pytest.raises(DataFormatError, match="JSON syntax") as info:
        read_coco_captions(path)
    assert info.value.line == 3
    path = _write(tmp_path / "e.json", _coco([{"id": 1}], []))
    with pytest.raises(DataFormatError, match=r"images\[0\]"):
        read_coco_captions(path)


def test_image_folder_lists_every_file_of_every_class(tmp_path):
    for relative in ("b/1.jpg", "a/x/2.png", "a/3.txt", "a/.hidden", "b/.git/4.jpg"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")
    (tmp_path / "loose.jpg").write_bytes(b"")
    paths, names, classes = list_image_folder(str(tmp_path))
    assert classes == ["a", "b"]
    assert [os.path.relpath(p, tmp_path) for p in paths] == ["a/3.txt", "a/x/2.png", "b/1.jpg"]
    assert names == ["a", "a", "b"]
    with pytest.raises(FileNotFoundError):
        list_image_folder(str(tmp_path / "b" / "1.jpg"))


def test_path_patterns(tmp_path):
    for name in ("s-00.tar", "s-01.tar", "s-02.tar", "other.txt"):
        (tmp_path / name).write_bytes(b"")
    root = str(tmp_path)
    expected = [f"{root}/s-0{i}.tar" for i in range(3)]
    assert expand_paths(f"{root}/s-*.tar") == expected
    assert expand_paths(f"{root}/s-{{00..02}}.tar") == expected
    assert expand_paths(f"{root}/s-00.tar,{root}/s-{{01,02}}.tar") == expected
    assert expand_paths([f"{root}/s-00.tar", f"{root}/s-01.tar"]) == expected[:2]
    assert expand_paths(root, directory_suffixes=(".tar",)) == expected
    assert expand_braces("x{8..10}{a,b}") == ["x8a", "x8b", "x9a", "x9b", "x10a", "x10b"]
    with pytest.raises(FileNotFoundError, match="s-03"):
        expand_paths(f"{root}/s-{{00..03}}.tar")
    with pytest.raises(FileNotFoundError, match="No file matches"):
        expand_paths(f"{root}/*.zip")
    with pytest.raises(FileNotFoundError, match="directory"):
        expand_paths(root)

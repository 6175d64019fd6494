import json
import math

import numpy as np
import pytest

from florence_keras.evaluation import reporting


def test_json_round_trip_with_numpy_values(tmp_path):
    results = {
        "top1": np.float32(0.25),
        "counts": np.array([1, 2, 3]),
        "matrix": np.eye(2, dtype=np.int64),
        "nan": float("nan"),
        "inf": np.float64(np.inf),
        "nested": [{"k": np.int64(5), "ok": np.bool_(True)}],
        7: "int key",
    }
    path = reporting.write_json(results, tmp_path / "sub" / "out.json")
    with open(path, encoding="utf-8") as file:
        loaded = json.load(file)
    assert loaded == {
        "top1": 0.25,
        "counts": [1, 2, 3],
        "matrix": [[1, 0], [0, 1]],
        "nan": None,
        "inf": None,
        "nested": [{"k": 5, "ok": True}],
        "7": "int key",
    }


def test_unserialisable_value_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="type object"):
        reporting.write_json({"x": object()}, tmp_path / "out.json")


def test_markdown_table_and_report(tmp_path):
    rows = [
        {"dataset": "a|b", "top1": 41.234, "top5": float("nan"), "converged": True},
        {"dataset": "c", "top1": 100.0, "extra": 3},
    ]
    table = reporting.markdown_table(rows)
    assert table.splitlines() == [
        "| dataset | top1 | top5 | converged | extra |",
        "|---|---|---|---|---|",
        "| a\\|b | 41.23 | – | yes | – |",
        "| c | 100.00 | – | – | 3 |",
    ]
    assert reporting.markdown_table(rows, columns=["top1"], float_format=".1f").splitlines()[2] == "| 41.2 |"
    path = reporting.write_markdown(tmp_path / "r.md", "Zero-shot", [("Summary", table), ("Notes", "text\n")])
    text = open(path, encoding="utf-8").read()
    assert text.startswith("# Zero-shot\n\n## Summary\n\n| dataset |")
    assert "## Notes\n\ntext\n" in text
    with pytest.raises(ValueError, match="non-empty list of dicts"):
        reporting.markdown_table([])


def test_percent():
    assert reporting.percent(0.4567) == pytest.approx(45.67)
    assert reporting.percent(None) is None and reporting.percent(math.nan) is None


def test_json_keeps_number_lists_on_one_line(tmp_path):
    path = reporting.write_json({"matrix": np.eye(2, dtype=int), "rows": [{"a": [1.5, None]}], "empty": {}},
                                tmp_path / "out.json")
    text = open(path, encoding="utf-8").read()
    assert "    [1, 0],\n    [0, 1]\n" in text
    assert '"a": [1.5, null]' in text
    assert json.loads(text) == {"matrix": [[1, 0], [0, 1]], "rows": [{"a": [1.5, None]}], "empty": {}}

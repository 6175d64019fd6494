"""Writing evaluation results: JSON (machine-readable) and a Markdown table (for people)."""

import json
import math
import os

import numpy as np


def to_jsonable(value):
    """Converts numpy scalars/arrays, tuples and non-finite floats into plain JSON values.

    NaN and infinities become `None` (JSON has no NaN). Dict keys become str.

    Example:
    >>> to_jsonable({"a": np.float32(0.5), 1: np.array([1, 2]), "b": float("nan")})
    {'a': 0.5, '1': [1, 2], 'b': None}
    """
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise ValueError(
        f"Cannot write a value of type {type(value).__name__} as JSON (convert it first). Received: {value!r}"
    )


def write_json(results, path):
    """Writes `results` (dicts/lists of numbers, str, numpy values) as indented JSON; returns the path.

    Lists of numbers or strings are written on one line each; NaN and infinities become `null`.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    text = _dumps(to_jsonable(results), 0)
    with open(path, "w", encoding="utf-8") as file:
        file.write(text + "\n")
    return path


def _dumps(value, level):
    """Indented JSON in which lists of scalars stay on one line (a 1000-class confusion matrix stays readable)."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(key)}: {_dumps(item, level + 1)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        return "[\n" + ",\n".join(inner + _dumps(item, level + 1) for item in value) + "\n" + pad + "]"
    return json.dumps(value, allow_nan=False, separators=(", ", ": "))


def _format_cell(value, float_format):
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return "–" if not math.isfinite(float(value)) else format(float(value), float_format)
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows, columns=None, float_format=".2f"):
    """A GitHub-flavoured Markdown table from a list of dicts.

    Args:
        rows: list of dicts (one per table row).
        columns: column keys in order; default: keys in order of first appearance. A missing value is "–".
        float_format: `format()` spec for floats (NaN/inf render as "–").

    Returns:
        the table as a str (no trailing newline).

    Example:
    >>> print(markdown_table([{"model": "tiny", "top1": 41.234}]))
    | model | top1 |
    |---|---|
    | tiny | 41.23 |
    """
    rows = list(rows)
    if not rows or not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"`rows` must be a non-empty list of dicts. Received: {rows!r}")
    if columns is None:
        columns = []
        for row in rows:
            columns.extend(key for key in row if key not in columns)
    columns = list(columns)
    if not columns:
        raise ValueError("The table has no columns.")
    lines = ["| " + " | ".join(str(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_format_cell(row.get(c), float_format) for c in columns) + " |")
    return "\n".join(lines)


def write_markdown(path, title, sections):
    """Writes a Markdown report: a `# title`, then each `(heading, body)` section as `## heading`.

    Args:
        path: output `.md` path.
        title: document title.
        sections: list of `(heading, body_markdown)` pairs (e.g. bodies from `markdown_table`).

    Returns:
        the path written.
    """
    path = os.fspath(path)
    parts = [f"# {title}", ""]
    for heading, body in sections:
        parts.extend([f"## {heading}", "", str(body).rstrip(), ""])
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        file.write("\n".join(parts))
    return path


def percent(value):
    """A fraction as a percentage (None/NaN pass through as None), for report tables."""
    if value is None:
        return None
    value = float(value)
    return 100.0 * value if math.isfinite(value) else None


def write_report(output_dir, name, title, results, sections):
    """Writes `<output_dir>/<name>.json` (all results) and `<output_dir>/<name>.md` (the sections).

    Args:
        output_dir: directory, created if needed.
        name: file stem.
        title: Markdown title.
        results: JSON-able dict (see `to_jsonable`).
        sections: list of `(heading, markdown_body)`.

    Returns:
        dict `{"json": path, "markdown": path}`.
    """
    output_dir = os.fspath(output_dir)
    return {
        "json": write_json(results, os.path.join(output_dir, f"{name}.json")),
        "markdown": write_markdown(os.path.join(output_dir, f"{name}.md"), title, sections),
    }

"""tools/pytest_main.py: the runner Bazel's pytest_test uses for one test file."""

import os
import subprocess
import sys
import textwrap

import pytest

from tools import pytest_main


def test_pytest_args_add_bazel_outputs(tmp_path):
    test_file = tmp_path / "x_test.py"
    test_file.write_text("def test_x():\n    pass\n", encoding="utf-8")
    env = {"XML_OUTPUT_FILE": "/out/test.xml", "TEST_TMPDIR": "/scratch"}
    assert pytest_main.pytest_args([str(test_file), "-k", "x"], env) == [
        str(test_file),
        "-k",
        "x",
        "--junitxml=/out/test.xml",
        "--basetemp=/scratch/pytest",
    ]
    assert pytest_main.pytest_args([str(test_file)], {}) == [str(test_file)]


def test_pytest_args_reject_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"Received: argv=\[\]"):
        pytest_main.pytest_args([], {})
    with pytest.raises(ValueError, match="Received: test_file='.*nope_test.py'"):
        pytest_main.pytest_args([str(tmp_path / "nope_test.py")], {})


def test_exit_code():
    assert pytest_main.exit_code(0, 0) == 0
    assert pytest_main.exit_code(1, 3) == 1  # failures stay failures
    assert pytest_main.exit_code(5, 2) == 0  # every test was deselected (all `slow`)
    assert pytest_main.exit_code(5, 0) == 5  # nothing collected at all


@pytest.mark.parametrize(
    "body, expected",
    [
        ("def test_ok():\n    assert True\n", 0),
        ("def test_bad():\n    assert False\n", 1),
        ("import pytest\n\n@pytest.mark.slow\ndef test_slow():\n    pass\n", 0),
        ("X = 1\n", 5),
    ],
)
def test_runs_one_file_end_to_end(tmp_path, body, expected):
    (tmp_path / "pytest.ini").write_text(
        textwrap.dedent(
            """\
            [pytest]
            addopts = -m "not slow" -p no:cacheprovider
            markers =
                slow: slow tests
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "one_test.py").write_text(body, encoding="utf-8")
    # Not the outer run's Bazel outputs: the inner pytest must not write this test's XML report.
    env = {k: v for k, v in os.environ.items() if k not in ("XML_OUTPUT_FILE", "TEST_TMPDIR")}
    completed = subprocess.run(
        [sys.executable, pytest_main.__file__, "one_test.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == expected, completed.stdout + completed.stderr
    timing = completed.stdout.strip().splitlines()[-1]
    assert timing.startswith(f"pytest_main: one_test.py finished with exit code {expected} in ")

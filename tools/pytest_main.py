"""Runs pytest on one test file: the `main` of every `pytest_test` (tools/pytest_test.bzl).

Bazel runs each test file as its own `py_test`; this runner hands the file (and any
`--test_arg`s) to pytest, so `pytest.ini` (markers, `-m "not slow"`, import mode) and
`tests/conftest.py` apply exactly as under a plain `pytest` run.

Usage (what Bazel runs, from the workspace root inside the test's runfiles):
    python tools/pytest_main.py tests/losses/unicl_loss_test.py [pytest args...]
"""

import time

_START = time.monotonic()  # before pytest and the test's imports: the time a `size` must cover

import os  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

# tools/generate_build.py --sizes_from_testlogs reads this line from Bazel's test.log.
TIMING_LINE = "pytest_main: {file} finished with exit code {code} in {seconds:.1f} s"


class _DeselectedCounter:
    """Counts the tests that `-m "not slow"` (or `-k`) deselected."""

    def __init__(self):
        self.deselected = 0

    def pytest_deselected(self, items):
        self.deselected += len(items)


def pytest_args(argv, environ):
    """The pytest command line for `argv` (this program's arguments) in `environ`.

    Args:
        argv: list of str, `[test_file, *extra_pytest_args]`.
        environ: mapping, the environment; under `bazel test` it holds `XML_OUTPUT_FILE`
            (where Bazel reads per-test-case results) and `TEST_TMPDIR` (scratch space).

    Returns:
        list of str, the arguments for `pytest.main`.
    """
    if not argv:
        raise ValueError("pytest_main needs the test file to run as its first argument. Received: argv=[]")
    if not os.path.isfile(argv[0]):
        raise ValueError(f"pytest_main: the test file does not exist. Received: test_file={argv[0]!r}")
    args = list(argv)
    if environ.get("XML_OUTPUT_FILE"):
        args.append("--junitxml=" + environ["XML_OUTPUT_FILE"])
    if environ.get("TEST_TMPDIR"):
        args.append("--basetemp=" + os.path.join(environ["TEST_TMPDIR"], "pytest"))
    return args


def exit_code(pytest_code, deselected):
    """Maps pytest's exit code to the test's.

    A file whose tests are all marked `slow` collects nothing once they are deselected;
    pytest reports that as code 5 ("no tests collected"), which is a pass here. A file
    that collects nothing at all (code 5 with nothing deselected) stays a failure.

    Args:
        pytest_code: int, what `pytest.main` returned.
        deselected: int, how many collected tests were deselected.

    Returns:
        int, the process exit code.
    """
    if int(pytest_code) == pytest.ExitCode.NO_TESTS_COLLECTED and deselected > 0:
        return 0
    return int(pytest_code)


def main(argv):
    counter = _DeselectedCounter()
    code = exit_code(pytest.main(pytest_args(argv[1:], os.environ), plugins=[counter]), counter.deselected)
    print(TIMING_LINE.format(file=argv[1], code=code, seconds=time.monotonic() - _START), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))

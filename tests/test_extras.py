"""The test extra (setup.py `extras_require["test"]`) is required: a missing package fails, it doesn't skip.

`pytest.importorskip` turns a parity proof against torch / transformers into a silent skip when the CI forgot
`.[test]`; `require` fails the module instead, with the install command. Set
`FLORENCE_ALLOW_MISSING_TEST_EXTRAS=1` to skip on purpose (e.g. a quick run without torch); the skip then says so.
"""

import importlib
import importlib.util
import os

import pytest

OPT_OUT_ENV = "FLORENCE_ALLOW_MISSING_TEST_EXTRAS"


def _missing(name, error):
    if os.environ.get(OPT_OUT_ENV) == "1":
        pytest.skip(f"{name} is not installed ({OPT_OUT_ENV}=1): {error}", allow_module_level=True)
    pytest.fail(
        f"{name!r} is not installed ({error}), but it is part of the `test` extra that this test needs. "
        f"Install it with `make install-test` (pip install -c constraints.txt -e '.[test]'), or set "
        f"{OPT_OUT_ENV}=1 to skip the tests that need it.",
        pytrace=False,
    )


def require(name):
    """Imports and returns module `name`; fails the test (or skips, if opted out) when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        _missing(name, error)


def require_installed(name):
    """Checks that module `name` can be imported, without importing it here (for subprocess tests)."""
    if importlib.util.find_spec(name) is None:
        _missing(name, "no module spec found")

"""`require` fails loudly on a missing test extra unless the opt-out is set."""

import pytest

from tests import test_extras

MISSING = "florence_no_such_module_xyz"


def test_missing_module_fails(monkeypatch):
    monkeypatch.delenv(test_extras.OPT_OUT_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match="make install-test"):
        test_extras.require(MISSING)
    with pytest.raises(pytest.fail.Exception, match=MISSING):
        test_extras.require_installed(MISSING)


def test_missing_module_skips_only_when_opted_out(monkeypatch):
    monkeypatch.setenv(test_extras.OPT_OUT_ENV, "1")
    with pytest.raises(pytest.skip.Exception, match=test_extras.OPT_OUT_ENV):
        test_extras.require(MISSING)


def test_installed_module_is_returned():
    assert test_extras.require("json").dumps([1]) == "[1]"
    test_extras.require_installed("json")

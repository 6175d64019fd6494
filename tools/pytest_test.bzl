"""`pytest_test`: one `py_test` per test file, run by pytest (see tools/pytest_main.py)."""

def pytest_test(name, srcs, deps = [], data = [], args = [], **kwargs):
    """A `py_test` that runs pytest on its single test file.

    pytest.ini (markers, `-m "not slow"`, `--import-mode=importlib`) travels with every test, so a
    test runs under Bazel exactly as under `pytest <file>`.

    Args:
      name: the test's name, the test file's name without `.py`.
      srcs: a list holding exactly the one test file.
      deps: `py_library` targets the test imports (tools/generate_build.py computes them).
      data: files the test reads.
      args: extra pytest arguments.
      **kwargs: passed on to `py_test` (`size`, `tags`, ...).
    """
    if len(srcs) != 1:
        fail("pytest_test needs exactly one test file in srcs. Received: srcs=%s" % srcs)
    native.py_test(
        name = name,
        srcs = srcs + ["//tools:pytest_main.py"],
        main = "//tools:pytest_main.py",
        args = ["$(rootpath %s)" % srcs[0]] + args,
        data = data + ([] if "//:pytest.ini" in data else ["//:pytest.ini"]),
        deps = deps,
        python_version = "PY3",
        srcs_version = "PY3",
        **kwargs
    )

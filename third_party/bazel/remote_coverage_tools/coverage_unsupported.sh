#!/bin/sh
# Offline stand-in for Bazel's coverage tools (see third_party/bazel/README.md).
echo "bazel coverage is not supported in this offline set-up; run the tests with .venv/bin/python -m pytest instead." >&2
exit 1

"""florence_keras benchmarks: `python benchmarks/run_all.py` (see docs/benchmarks.md)."""

"""Runs the input fuzz tests (`tests/fuzz/`) in nightly mode and prints the cases run per input path.

    .venv/bin/python tools/fuzz_nightly.py --examples=2000            # every path, 2,000 cases per cheap test
    .venv/bin/python tools/fuzz_nightly.py --examples=500 --paths=coco,webdataset --seed=7

Each path's test file runs in its own pytest process with `FLORENCE_FUZZ_EXAMPLES` (cases per test; tests whose
cases build a tf.data pipeline or load a model run a documented share of it), a random (or given) seed in
`FLORENCE_FUZZ_SEED`, and `FLORENCE_FUZZ_REPORT` (outcome counts). A failing path prints hypothesis' minimal
failing case and a `@reproduce_failure` line. Exit status: 0 when every path passed.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATHS = ("csv_tsv", "coco", "imagefolder", "webdataset", "tfrecord", "image_bytes", "text", "preset_dir",
         "safe_loading")


def run_path(name, examples, seed, report_dir, timeout):
    """Runs `tests/fuzz/<name>_test.py`; returns `(passed, seconds, outcome_counts, output_tail)`."""
    report = os.path.join(report_dir, f"{name}.json")
    env = dict(os.environ, FLORENCE_FUZZ_EXAMPLES=str(examples), FLORENCE_FUZZ_SEED=str(seed),
               FLORENCE_FUZZ_REPORT=report, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", f"--hypothesis-seed={seed}",
               os.path.join("tests", "fuzz", f"{name}_test.py")]
    start = time.time()
    try:
        completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        passed, output = completed.returncode == 0, completed.stdout + completed.stderr
    except subprocess.TimeoutExpired as error:
        passed, output = False, f"timed out after {timeout} s\n{error.stdout or ''}"
    counts = {}
    if os.path.exists(report):
        with open(report, encoding="utf-8") as f:
            counts = json.load(f)
    return passed, time.time() - start, counts, output[-3000:]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=2000, help="cases per (cheap) test")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated input paths")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random, printed)")
    parser.add_argument("--timeout", type=int, default=6 * 3600, help="seconds allowed per path")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    names = [name.strip() for name in args.paths.split(",") if name.strip()]
    unknown = sorted(set(names) - set(PATHS))
    if unknown:
        parser.error(f"unknown paths {unknown}; known: {', '.join(PATHS)}")
    print(f"fuzz nightly: {args.examples} cases per test, seed {seed}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as report_dir:
        for name in names:
            passed, seconds, counts, tail = run_path(name, args.examples, seed, report_dir, args.timeout)
            cases = sum(outcomes.get("cases", 0) for outcomes in counts.values())
            outcomes = {key: value for outcomes in counts.values() for key, value in outcomes.items() if key != "cases"}
            results[name] = {"passed": passed, "seconds": round(seconds), "cases": cases, "outcomes": outcomes}
            status = "PASS" if passed else "FAIL"
            print(f"{name:13s} {status}  {cases:7d} cases  {seconds:7.0f} s  {json.dumps(outcomes, sort_keys=True)}",
                  flush=True)
            if not passed:
                print(tail, flush=True)
    total = sum(result["cases"] for result in results.values())
    print(f"total: {total} cases, seed {seed}, "
          f"{'all passed' if all(r['passed'] for r in results.values()) else 'FAILURES'}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"seed": seed, "examples": args.examples, "paths": results}, f, indent=1)
    return 0 if all(result["passed"] for result in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

"""interleaved_rounds: the order rotates between rounds, each round's time is the median of its steps."""

import doctest

from benchmarks import interleaved_rounds


class _Recorder:
    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def step(self):
        self.calls.append(self.name)


def test_order_rotates_and_every_case_runs_iters_steps_per_round():
    calls = []
    cases = {name: _Recorder(name, calls) for name in "abc"}
    lines = []
    wall, cpu = interleaved_rounds.time_rounds(cases, rounds=3, iters=2, log=lines.append, warmup=True)
    assert calls == list("abc") + list("aabbcc") + list("bbccaa") + list("ccaabb")  # warm-up, then rotated rounds
    assert all(len(wall[n]) == len(cpu[n]) == 3 and min(wall[n]) >= 0 for n in "abc")
    assert len(lines) == 3 and lines[0].startswith("  round 1/3: a ")


def test_summary_and_docstring_example():
    assert interleaved_rounds.summary([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    result = doctest.testmod(interleaved_rounds)
    assert result.attempted >= 1 and result.failed == 0


def test_ratio_row():
    cpu = interleaved_rounds.summary([1.0, 2.0, 4.0])
    wall = interleaved_rounds.summary([0.5])
    row = interleaved_rounds.ratio_row("a", "b", cpu, wall)
    assert row == "| a | b | **2.00x** [1.00, 4.00] | 0.50x [0.50, 0.50] |"


def test_publish_records_the_machine_prints_the_table_and_writes_json(tmp_path, capsys):
    import json

    output = tmp_path / "result.json"
    result = interleaved_rounds.publish({"rounds": 1}, lambda r, machine: f"table on {machine}", "x.py", ["--a"], 2,
                                        str(output), wall_s=1.5)
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("table on ") and printed.endswith(", 2 threads") and result["threads"] == 2
    saved = json.loads(output.read_text())
    assert saved["command"] == "python benchmarks/x.py --a" and saved["threads"] == 2 and saved["wall_s"] == 1.5
    assert saved["machine"]["cpu_count"] >= 1 and len(saved["load_average_end"]) == 3

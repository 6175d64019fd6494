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

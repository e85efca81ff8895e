"""The machine-speed line of bench.compare's report: figures from two machines compare by it."""

import argparse

from bench import compare


def test_report_says_how_fast_the_machine_ran_a_fixed_loop() -> None:
    seconds = compare.machine_speed(repeats=1)
    assert 0 < seconds < 60
    facts = {"speed": f"a pure-Python loop took {seconds:.2f} s CPU"}
    args = compare.parse(["--no-record"])
    text = compare.report([], facts, argparse.Namespace(**vars(args)), "python -m bench.compare",
                          "0.1 0.1 0.1")
    assert f"- machine speed: a pure-Python loop took {seconds:.2f} s CPU" in text

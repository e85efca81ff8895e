"""The one percentile every benchmark table reports (bench.harness.percentile): nearest rank."""

import math

from bench.harness import percentile


def test_nearest_rank_as_the_tables_report_it() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100, shuffled order must not matter
    assert percentile(list(reversed(values)), 0.5) == 51.0
    assert percentile(values, 0.99) == 100.0
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 1.0) == 100.0  # never past the last value
    assert percentile([7.0], 0.99) == 7.0
    assert math.isnan(percentile([], 0.99))

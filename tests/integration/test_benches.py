"""The benchmarks of `make bench` run, at the smallest sizes, and print their tables."""

from __future__ import annotations

import pytest

from tests.conftest import run_bench

RUNS = {
    "warm": ["--rounds", "3"],
    "partners": ["--sizes", "300", "--loaded", "30", "--changed", "3", "--leads", "20"],
    "memory": ["--requests", "3"],
    "init": ["--rounds", "1", "--functions", "figures", "ping", "post"],
    "auction": ["--sizes", "1", "2", "3", "--rounds", "2"],
    "bids_item": ["--auctions", "3"],
    "leadtypes": ["--rounds", "3"],
    "scale": ["--sizes", "20", "60", "--leads", "3"],
}


@pytest.mark.long
def test_the_auction_benchmark_runs_with_the_demo_bidders_too() -> None:
    printed = run_bench("auction", "--sizes", "1", "2", "--rounds", "2", "--buyers", "demo")
    assert printed.startswith("Demo buyers answering after 20 ms")
    assert len([line for line in printed.splitlines() if line.startswith("| ")]) == 3


@pytest.mark.long
@pytest.mark.parametrize("bench", sorted(RUNS))
def test_a_benchmark_prints_its_table(bench: str) -> None:
    printed = run_bench(bench, *RUNS[bench])
    rows = [line for line in printed.splitlines() if line.startswith("| ")]
    assert len(rows) >= 4, printed
    if bench == "scale":
        # Wall clock and CPU of each size, the first size's ratios 1.00x.
        assert len(rows) == 5 and all(row.count("(1.00x)") == 3 for row in rows[1:3]), printed
    if bench in ("warm", "memory", "init", "auction", "leadtypes"):
        # A row per function (or kind of request) it measures, every figure a number.
        for row in rows[1:]:
            cells = [c.strip() for c in row.strip("|").split("|")[1:]]
            assert all(c.replace(",", "").replace(".", "").rstrip("x").isdigit() for c in cells)

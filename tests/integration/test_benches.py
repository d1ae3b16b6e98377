"""The benchmarks of `make bench` run, at the smallest sizes, and print their tables."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

RUNS = {
    "warm": ["--rounds", "3"],
    "partners": ["--sizes", "300", "--loaded", "30", "--changed", "3"],
    "memory": ["--requests", "3"],
    "init": ["--rounds", "1"],
}


@pytest.mark.parametrize("bench", sorted(RUNS))
def test_a_benchmark_prints_its_table(bench: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{bench}.py"), *RUNS[bench]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) >= 4, done.stdout
    if bench in ("warm", "memory", "init"):
        # A row per function (or kind of request) it measures, every figure a number.
        for row in rows[1:]:
            cells = [c.strip() for c in row.strip("|").split("|")[1:]]
            assert all(c.replace(",", "").replace(".", "").rstrip("x").isdigit() for c in cells)

"""The matching benchmark runs, measures the same work every time, and both ways agree."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pingpost.matching import PartnerSet

BENCH = Path(__file__).resolve().parents[2] / "bench" / "matching.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_matching", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


def test_the_same_seed_gives_the_same_partners_and_leads(bench: ModuleType) -> None:
    assert bench.random_partners(50, seed=3) == bench.random_partners(50, seed=3)
    assert bench.random_partners(50, seed=3) != bench.random_partners(50, seed=4)
    assert bench.random_pings(20, seed=3) == bench.random_pings(20, seed=3)


def test_the_index_matches_the_same_partners_as_the_linear_scan(bench: ModuleType) -> None:
    partners = bench.random_partners(200)
    index = PartnerSet(partners)
    pings = bench.random_pings(100)
    matched = 0
    for ping in pings:
        by_index = {p.id for p in bench.indexed(ping, index)}
        assert by_index == {p.id for p in bench.linear(ping, partners)}
        matched += len(by_index)
    assert matched > 0  # the leads are of a kind the partners buy


@pytest.mark.long
def test_main_prints_a_markdown_row_per_size(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--sizes", "50", "200", "--rounds", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| partners | candidates per ping (mean) | index µs/ping")
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["50", "200"]


def test_the_decoding_benchmark_decodes_every_kind_and_refuses_the_hostile_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = BENCH.parent / "decoding.py"
    spec = importlib.util.spec_from_file_location("bench_decoding", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Every kind of body carries the same lead
    from pingpost.decoding import decode
    from pingpost.errors import InvalidRequest

    for content_type, body in module.bodies(0).values():
        assert decode("POST", content_type, "", body, 256 * 1024).fields == module.lead()
    for content_type, body in module.hostile(256 * 1024).values():
        with pytest.raises(InvalidRequest):
            decode("POST", content_type, "", body, 256 * 1024)
    assert module.main(["--rounds", "2"]) == 0
    rows = [line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == [
        f"{kind}, {size}"
        for size in ("a lead", "at the cap")
        for kind in ("form", "multipart", "xml", "json")
    ] + [f"{label} (refused)" for label in module.hostile(1024)]


def test_the_init_benchmark_counts_the_same_instructions_every_run() -> None:
    # Its --instructions ratios are free of the machine's noise: the count of a body is the
    # same run after run (within a thousandth), grows with the work, and leaves out the rest.
    spec = importlib.util.spec_from_file_location("bench_init", BENCH.parent / "init.py")
    assert spec is not None and spec.loader is not None
    init = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(init)
    small = [init.instructions("sum(range(20_000))", [], BENCH.parent) for _ in range(2)]
    large = init.instructions("sum(range(200_000))", [], BENCH.parent)
    assert abs(small[0] - small[1]) < small[0] / 1000, small
    assert 0 < small[0] < large < 20 * small[0], (small, large)

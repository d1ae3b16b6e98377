"""Tests for pingpost.geography and the tools/build_zip_states.py data it ships."""

from __future__ import annotations

import importlib.util
import zlib
from importlib.resources import files
from pathlib import Path
from types import ModuleType

import pytest

from pingpost.geography import US_STATES, state_for_zip

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "build_zip_states.py"
DATA = files("pingpost").joinpath("data", "zip_states.bin")


def _load_build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_zip_states", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build() -> ModuleType:
    return _load_build_script()


@pytest.fixture(scope="module")
def included(build: ModuleType) -> dict[str, str]:
    zips: dict[str, str] = build.included_zips()
    return zips


FIFTY_STATES_AND_DC = {
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL",
    "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT",
    "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI",
    "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "DC",
}  # fmt: skip


def test_every_included_zip_maps_to_its_state(included: dict[str, str]) -> None:
    assert len(included) > 40_000
    wrong = {z: (s, state_for_zip(z)) for z, s in included.items() if state_for_zip(z) != s}
    assert wrong == {}


def test_excluded_source_zips_return_none(build: ModuleType) -> None:
    excluded = [r["zip_code"] for r in build.all_records() if not build.is_included(r)]
    assert excluded, "the source marks no ZIP inactive; revisit the inclusion rule"
    assert [z for z in excluded if state_for_zip(z) is not None] == []


def test_every_other_number_returns_none(included: dict[str, str]) -> None:
    all_numbers = (f"{n:05d}" for n in range(100_000))
    assert [z for z in all_numbers if z not in included and state_for_zip(z) is not None] == []


@pytest.mark.parametrize("zip5", ["00000", "99999", "00001", "00500"])
def test_unassigned_zips_return_none(zip5: str) -> None:
    assert state_for_zip(zip5) is None


@pytest.mark.parametrize(
    "zip5",
    ["6061", "606100", "6061a", " 60610", "60610 ", "", "60610-1234", "+6061", "-6061", "٦٠٦١٠"],
)
def test_malformed_input_returns_none(zip5: str) -> None:
    assert state_for_zip(zip5) is None


@pytest.mark.parametrize(
    ("zip5", "state"),
    [("60610", "IL"), ("90210", "CA"), ("10001", "NY"), ("00601", "PR"), ("09001", "AE")],
)
def test_known_zips(zip5: str, state: str) -> None:
    assert state_for_zip(zip5) == state


def test_every_returned_state_is_valid() -> None:
    returned = {state_for_zip(f"{n:05d}") for n in range(100_000)} - {None}
    assert returned <= US_STATES
    header_codes = DATA.read_bytes().split(b"\n", 2)[1].decode("ascii").split(",")
    assert set(header_codes) <= US_STATES


def test_fifty_states_and_dc_are_valid() -> None:
    assert len(FIFTY_STATES_AND_DC) == 51
    assert FIFTY_STATES_AND_DC <= US_STATES
    assert all(len(s) == 2 and s.isascii() and s.isupper() for s in US_STATES)


def test_rebuild_matches_committed_file(build: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "zip_states.bin"
    build.main(["--output", str(out)])
    committed, rebuilt = DATA.read_bytes(), out.read_bytes()
    hint = "regenerate with: .venv/bin/python tools/build_zip_states.py"
    c_source, c_codes, c_packed = committed.split(b"\n", 2)
    r_source, r_codes, r_packed = rebuilt.split(b"\n", 2)
    # Compare content first so a data change and a compressor change fail differently.
    assert r_source == c_source, f"source package changed ({c_source!r} -> {r_source!r}); {hint}"
    assert (r_codes, zlib.decompress(r_packed)) == (c_codes, zlib.decompress(c_packed)), hint
    assert rebuilt == committed, f"same table, different compressed bytes; {hint}"


def test_build_is_deterministic(build: ModuleType, tmp_path: Path) -> None:
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    build.build(first)
    build.build(second)
    assert first.read_bytes() == second.read_bytes()

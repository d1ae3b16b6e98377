"""Build layers/pingpost/pingpost/data/zip_states.bin, the bundled US ZIP -> state table.

Source: the PyPI package ``zipcodes`` (https://github.com/seanpianka/zipcodes), whose
wheel embeds the data; we read it through ``zipcodes.list_all()`` and keep only each
ZIP's 5-digit code and state. The package is MIT-licensed (``License-Expression: MIT``
in its metadata). Its README says the dataset is assembled from unitedstateszipcodes.org
(base data; no licence stated), the USPS ZIP Locale Detail (public domain) and GeoNames
(CC BY 4.0, coordinates only, which we do not use).

Inclusion rule: every record with ``active`` true, of any type (STANDARD, PO BOX,
UNIQUE, MILITARY). Records with ``active`` false are decommissioned ZIPs; mail to them
no longer goes through, so a lead giving one has a bad address. PO Box, unique
(single-organisation) and military ZIPs are still deliverable codes, so they count.

File format: ``b"zipcodes <version>\\n"``, then the state codes, sorted and joined by
commas, plus ``b"\\n"``, then zlib (level 9) of a 100000-byte table where byte ``n``
is 0 if ZIP ``n`` (zero-padded) does not exist, or else the 1-based index of its state
in the code list. The output depends only on the data, so every run gives the same bytes.

Usage: python tools/build_zip_states.py [--output PATH]
"""

from __future__ import annotations

import argparse
import zlib
from pathlib import Path
from typing import Any

import zipcodes

DEFAULT_OUTPUT = (
    Path(__file__).resolve().parents[1] / "layers/pingpost/pingpost/data/zip_states.bin"
)
TABLE_SIZE = 100_000


def source_version() -> str:
    """Version of the ``zipcodes`` package the data is read from."""
    return str(zipcodes.__version__)


def all_records() -> list[dict[str, Any]]:
    """Every record in the ``zipcodes`` package, decommissioned ones included."""
    records: list[dict[str, Any]] = zipcodes.list_all()  # type: ignore[no-untyped-call]
    return records


def is_included(record: dict[str, Any]) -> bool:
    """Whether a record goes into the table (see the module docstring for why)."""
    return bool(record["active"])


def included_zips() -> dict[str, str]:
    """ZIP -> state for every ZIP the table holds."""
    result: dict[str, str] = {}
    for record in all_records():
        if not is_included(record):
            continue
        zip5, state = record["zip_code"], record["state"]
        if not (len(zip5) == 5 and zip5.isascii() and zip5.isdigit()):
            raise ValueError(f"bad ZIP in source data: {zip5!r}")
        if not (len(state) == 2 and state.isascii() and state.isupper()):
            raise ValueError(f"bad state for ZIP {zip5}: {state!r}")
        if result.setdefault(zip5, state) != state:
            raise ValueError(f"ZIP {zip5} listed in two states")
    return result


def encode(zip_states: dict[str, str], version: str) -> bytes:
    """The file contents for a ZIP -> state mapping."""
    states = sorted(set(zip_states.values()))
    if len(states) > 255:
        raise ValueError("too many state codes for a one-byte index")
    index = {state: i for i, state in enumerate(states, start=1)}
    table = bytearray(TABLE_SIZE)
    for zip5, state in zip_states.items():
        table[int(zip5)] = index[state]
    header = f"zipcodes {version}\n{','.join(states)}\n".encode("ascii")
    return header + zlib.compress(bytes(table), 9)


def build(output: Path) -> int:
    """Write the file to ``output``; returns the number of ZIPs in it."""
    zip_states = included_zips()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(encode(zip_states, source_version()))
    return len(zip_states)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    count = build(args.output)
    print(f"wrote {count} ZIPs to {args.output} ({args.output.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

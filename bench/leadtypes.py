"""Validating a lead of each type, against Home Improvement's (TYPE 7) as the baseline.

    .venv/bin/python bench/leadtypes.py --rounds 2000

A whole lead of each type (every field a full request requires and every field partners filter
on, at the table's example values) is validated as a full request, rounds interleaved; times
are medians. Also: what building a type's model costs its first request in a container (once
per type), and the time per field validated, since the types differ in how many fields a lead
has. Compare the ratios, measured in the same run, not the absolute times.
"""

from __future__ import annotations

import argparse
import statistics
import time

from pingpost.fields import LEAD_ID, LEAD_TYPE, TABLES, Need, Table
from pingpost.validation import request_model, validate


def lead(lead_table: Table) -> dict[str, str]:
    """A whole lead of the type at its example values (the state looked up from the ZIP)."""
    return {
        f.name: f.example
        for f in lead_table.fields
        if (f.required("full") is Need.YES or f.match)
        and f.name not in lead_table.looked_up
        and f.name != LEAD_ID
    }


def timed(fields: dict[str, str]) -> float:
    started = time.perf_counter()
    validate(fields, "full", dynamic_pricing=False)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args(argv)
    leads = {code: lead(t) for code, t in TABLES.items()}
    builds: dict[str, list[float]] = {code: [] for code in leads}
    for _ in range(7):  # the first build of all pays for warming Pydantic up: medians
        for code, lead_table in TABLES.items():
            request_model.cache_clear()
            started = time.perf_counter()
            request_model(lead_table)
            builds[code].append(time.perf_counter() - started)
    built = {code: statistics.median(found) for code, found in builds.items()}
    for fields in leads.values():  # each model built, the first request of each done
        validate(fields, "full", dynamic_pricing=False)
    times: dict[str, list[float]] = {code: [] for code in leads}
    for _ in range(args.rounds):
        for code, fields in leads.items():
            times[code].append(timed(fields))
    base = statistics.median(times[LEAD_TYPE])
    base_each = base / len(leads[LEAD_TYPE])
    print(f"Validating a whole lead of each type as a full request, {args.rounds} rounds")
    print()
    print("| type | fields sent | median µs | vs type 7 | per field vs type 7 | model built ms |")
    print("|---|--:|--:|--:|--:|--:|")
    for code, fields in leads.items():
        median = statistics.median(times[code])
        per_field = median / len(fields) / base_each
        print(
            f"| {code} {TABLES[code].lead_type.name} | {len(fields)} | {median * 1e6:.0f} |"
            f" {median / base:.2f}x | {per_field:.2f}x | {built[code] * 1e3:.1f} |"
        )


if __name__ == "__main__":
    main()

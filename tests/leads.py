"""Leads for tests, built from the field table and the demo seed (no field typed by hand)."""

from __future__ import annotations

import itertools
import json

from pingpost.fields import LEAD_ID, LEAD_TYPE, TABLES, Kind, Need
from tests.conftest import DEMO_SEED

_VENDORS = json.loads(DEMO_SEED.read_text())["vendors"]
KEY: str = _VENDORS[0]["key"]  # fixed pricing, cost 10
DYNAMIC_KEY: str = _VENDORS[1]["key"]  # dynamic pricing, margin 2.50


_consumers = itertools.count(1000)


def complete(mode: str, lead_type: str = LEAD_TYPE, **changes: str) -> dict[str, str]:
    """Every field `mode` requires of `lead_type` (Home Improvement unless said), at the field
    table's example values, then `changes` ("" removes).

    Each lead is another consumer (email and phone), so partners' dedupe windows let it sell.
    """
    lead_table = TABLES[lead_type]
    skipped = {*lead_table.looked_up, LEAD_ID}
    fields = {
        f.name: f.example
        for f in lead_table.fields
        if f.required(mode) is Need.YES and f.name not in skipped
    }
    fields |= {"Key": KEY, "Mode": mode}
    if mode != "post" and lead_type == LEAD_TYPE:  # a post keeps the product of its ping
        fields["Home_Improvement_Product"] = "Roofing - Metal"
    if mode != "ping":
        n = next(_consumers)
        for name in list(fields):
            kind = lead_table.by_name[name].kind
            if kind is Kind.EMAIL:
                fields[name] = f"consumer{n}@example.com"
            elif kind is Kind.PHONE:
                fields[name] = f"312555{n % 10000:04d}"
    fields |= changes
    return {k: v for k, v in fields.items() if v != ""}

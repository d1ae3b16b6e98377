"""Leads for tests, built from the field table and the demo seed (no field typed by hand)."""

from __future__ import annotations

import itertools
import json

from pingpost.fields import FIELDS, Need
from tests.conftest import DEMO_SEED

_VENDORS = json.loads(DEMO_SEED.read_text())["vendors"]
KEY: str = _VENDORS[0]["key"]  # fixed pricing, cost 10
DYNAMIC_KEY: str = _VENDORS[1]["key"]  # dynamic pricing, margin 2.50


_consumers = itertools.count(1000)


def complete(mode: str, **changes: str) -> dict[str, str]:
    """Every field `mode` requires, at the spec's example values, then `changes` ("" removes).

    Each lead is another consumer (email and phone), so partners' dedupe windows let it sell.
    """
    fields = {
        f.name: f.example
        for f in FIELDS
        if f.required(mode) is Need.YES and f.name not in ("State", "Lead_ID")
    }
    fields |= {"Key": KEY, "Mode": mode}
    if mode != "post":  # a post keeps the product of its ping
        fields["Home_Improvement_Product"] = "Roofing - Metal"
    if mode != "ping":
        n = next(_consumers)
        fields |= {"Email": f"consumer{n}@example.com", "Home_Phone": f"312555{n % 10000:04d}"}
    fields |= changes
    return {k: v for k, v in fields.items() if v != ""}

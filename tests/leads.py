"""Leads for tests, built from the field table and the demo seed (no field typed by hand)."""

from __future__ import annotations

import json

from pingpost.fields import FIELDS, Need
from tests.conftest import DEMO_SEED

_VENDORS = json.loads(DEMO_SEED.read_text())["vendors"]
KEY: str = _VENDORS[0]["key"]  # fixed pricing, cost 10
DYNAMIC_KEY: str = _VENDORS[1]["key"]  # dynamic pricing, margin 2.50


def complete(mode: str, **changes: str) -> dict[str, str]:
    """Every field `mode` requires, at the spec's example values, then `changes` ("" removes)."""
    fields = {
        f.name: f.example
        for f in FIELDS
        if f.required(mode) is Need.YES and f.name not in ("State", "Lead_ID")
    }
    fields |= {"Key": KEY, "Mode": mode, "Home_Improvement_Product": "Roofing - Metal"}
    fields |= changes
    return {k: v for k, v in fields.items() if v != ""}

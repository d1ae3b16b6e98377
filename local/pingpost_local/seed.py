"""Seed files: vendors and partners as JSON, upserted where the AWS environment points."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pingpost.models import Partner, Vendor, key_hash
from pingpost.store import partners, vendors


class SeedVendor(BaseModel):
    """A vendor as a seed file gives it: the plain Key, stored only as its hash."""

    model_config = ConfigDict(extra="allow")

    id: str
    key: str = Field(min_length=16, max_length=256)

    def vendor(self) -> Vendor:
        """The vendor to store."""
        values = self.model_dump()
        values["key_hash"] = key_hash(values.pop("key"))
        return Vendor.model_validate(values)


class Seed(BaseModel):
    """A seed file."""

    model_config = ConfigDict(extra="forbid")

    vendors: list[SeedVendor] = []
    partners: list[Partner] = []


def load(path: Path) -> Seed:
    """Read and check a seed file."""
    document: Any = json.loads(path.read_text(encoding="utf-8"))
    return Seed.model_validate(document)


def apply(seed: Seed) -> tuple[int, int]:
    """Create or replace every vendor and partner of `seed`; returns how many of each."""
    for vendor in seed.vendors:
        vendors.put(vendor.vendor())
    for partner in seed.partners:
        partners.put(partner)
    return len(seed.vendors), len(seed.partners)

"""Vendors (publishers) and partners (buyers) as the exchange stores and seeds them."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pingpost.fields import PRODUCTS
from pingpost.geography import US_STATES

Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]


def key_hash(key: str) -> str:
    """The stored form of a vendor's API key (keys are long random strings, so SHA-256 suffices)."""
    return hashlib.sha256(key.encode()).hexdigest()


class Vendor(BaseModel):
    """A publisher that sends leads with its Key."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = ""
    key_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    cost: Money = Decimal(0)
    dynamic_pricing: bool = False
    # What the exchange keeps of each sale of a dynamic-pricing vendor's lead.
    margin: Money = Decimal(0)
    margin_type: Literal["amount", "percent"] = "amount"
    allowed_times_sold: int = Field(default=1, ge=1)
    active: bool = True


class Filters(BaseModel):
    """What a partner buys; an empty list means any."""

    model_config = ConfigDict(extra="allow")

    states: list[str] = []
    zips: list[str] = []
    products: list[str] = []
    min_score: int = 0

    @field_validator("states")
    @classmethod
    def _known_states(cls, states: list[str]) -> list[str]:
        unknown = [s for s in states if s.upper() not in US_STATES]
        if unknown:
            raise ValueError(f"unknown states {unknown}")
        return [s.upper() for s in states]

    @field_validator("zips")
    @classmethod
    def _five_digit_zips(cls, zips: list[str]) -> list[str]:
        bad = [z for z in zips if len(z) != 5 or not z.isdigit()]
        if bad:
            raise ValueError(f"zips must be 5 digits: {bad}")
        return zips

    @field_validator("products")
    @classmethod
    def _known_products(cls, products: list[str]) -> list[str]:
        unknown = [p for p in products if p not in PRODUCTS]
        if unknown:
            raise ValueError(f"unknown products {unknown}")
        return products


class Delivery(BaseModel):
    """Where and how a partner receives its leads."""

    model_config = ConfigDict(extra="allow")

    url: str = ""
    format: Literal["json", "form", "xml"] = "json"


class Partner(BaseModel):
    """A buyer: its price, filters, delivery and the identity values vendors may hash."""

    model_config = ConfigDict(extra="allow")

    id: int = Field(ge=1)
    company: str = ""
    email: str = ""
    phone: str = ""
    promotion_code: str = ""
    group_id: int | None = None
    price: Money
    active: bool = True
    # A test partner buys only test leads (Test_Lead=1), and only it does.
    test: bool = False
    filters: Filters = Filters()
    delivery: Delivery = Delivery()

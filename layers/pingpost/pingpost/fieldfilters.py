"""A partner's filters on a lead type's fields: `filters.fields` of the partners table.

    "lead_types": ["20"],
    "filters": {"fields": {"Vehicle_1_Coverage_Type": ["Superior", "Standard"],
                           "Driver_1_Age": {"min": 25, "max": 70}}}

A filter names a field its lead types mark `match`, with the values it takes (any case, spaces
run together) or, for a number, a range. It applies to the leads of the partner's types that
have the field; a lead that has not sent it is not taken. `Rule.reason` says why a lead fails it,
as `lead show` explains it: "Driver_1_Age 19 below 25".
"""

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pingpost.fields import TABLES, TYPES, Kind, named
from pingpost.leadtypes import folded
from pingpost.observability import logger


def known_lead_types(codes: list[str]) -> list[str]:
    """`codes` once each, if each is a lead type of the exchange (ValueError naming the rest)."""
    unknown = [c for c in codes if c not in TYPES]
    if unknown or not codes:
        raise ValueError(f"lead_types must be some of the exchange's: {named()}; not {unknown}")
    return list(dict.fromkeys(codes))


def still_known(codes: list[str], whose: str) -> list[str]:
    """A stored vendor's or partner's lead types that are still the exchange's: one whose type
    file was taken away is read without it (a partner with none left buys nothing), never
    refused, so that one item cannot stop every request."""
    known = [c for c in codes if c in TYPES]
    if len(known) < len(codes):
        logger.warning("a %s names lead types the exchange no longer has: %s", whose, codes)
    return known


class Range(BaseModel):
    """A number's filter: the least and the most a partner takes (either may be left out)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # as endpoints.Outbound's

    min: Decimal | None = Field(default=None, allow_inf_nan=False)
    max: Decimal | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if self.min is None and self.max is None:
            raise ValueError("a range needs a min or a max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is over max")
        return self


Taken = list[str] | Range


def checked(name: str, taken: Taken, codes: list[str]) -> Taken:
    """A partner's filter on `name`, checked against the field in the lead types it buys
    (`codes`): a choice's values as the field spells them (ValueError saying what is wrong)."""
    fields = [TABLES[c].by_name[name] for c in codes if name in TABLES[c].by_name]
    if not fields or not all(f.match for f in fields):
        raise ValueError(
            f"filters.fields: {name} is not a field partners may filter on (match) in TYPE"
            f" {', '.join(codes)}"
        )
    numeric = all(f.kind in (Kind.INTEGER, Kind.MONEY) for f in fields)
    if isinstance(taken, Range):
        if not numeric:
            raise ValueError(f"filters.fields: {name} is not a number: give a list of its values")
        return taken
    if numeric:
        raise ValueError(f'filters.fields: {name} is a number: give a range, {{"min": ...}}')
    if any(f.kind in (Kind.INTEGER, Kind.MONEY) for f in fields):
        raise ValueError(f"filters.fields: {name} is a number in one lead type, text in another")
    if not taken or not all(v.strip() for v in taken):
        raise ValueError(f"filters.fields: {name} needs a list of values (or a min and a max)")
    spelt = {folded(v): v for f in fields for v in f.values}
    if spelt:
        unknown = [v for v in taken if folded(v) not in spelt]
        if unknown:
            raise ValueError(f"filters.fields: {name} has no values {unknown}")
        return list(dict.fromkeys(spelt[folded(v)] for v in taken))
    return list(dict.fromkeys(" ".join(v.split()) for v in taken))


class Rule(NamedTuple):
    """One field filter as matching reads it."""

    name: str
    types: frozenset[str]  # the lead types that have the field (it applies to their leads)
    taken: frozenset[str] | None  # folded values taken, or None for a range
    least: Decimal | None = None
    most: Decimal | None = None

    @classmethod
    def of(cls, name: str, taken: Taken) -> "Rule":
        types = frozenset(code for code, t in TABLES.items() if name in t.by_name)
        if isinstance(taken, Range):
            return cls(name, types, None, taken.min, taken.max)
        return cls(name, types, frozenset(map(folded, taken)))

    def reason(self, lead_type: str, values: Mapping[str, object]) -> str | None:
        """Why a lead of `lead_type` with `values` fails this filter; None if it passes."""
        if lead_type not in self.types:
            return None
        value = values.get(self.name)
        if value is None:
            return f"{self.name} not sent"
        if self.taken is not None:
            return None if folded(str(value)) in self.taken else f"{self.name} {value} not taken"
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return f"{self.name} {value} not a number"
        if self.least is not None and number < self.least:
            return f"{self.name} {value} below {self.least}"
        if self.most is not None and number > self.most:
            return f"{self.name} {value} above {self.most}"
        return None


def rules(fields: Mapping[str, Taken]) -> tuple[Rule, ...]:
    """A partner's field filters as matching reads them."""
    return tuple(Rule.of(name, taken) for name, taken in fields.items())

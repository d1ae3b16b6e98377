"""Caps: the periods a partner's caps count sales in, what it has bought in them, and which
cap that reaches."""

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from pingpost.models import Partner
from pingpost.reasons import DAILY_BUDGET, DAILY_CAP, MONTHLY_CAP, WEEKLY_CAP


def aware(now: datetime) -> datetime:
    """`now`, refused unless timezone-aware (UTC)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    return now


class Periods(NamedTuple):
    """The day, ISO week and month a moment falls in, in a partner's time zone."""

    day: str  # 2026-11-28
    week: str  # 2026-W48
    month: str  # 2026-11


def periods(partner: Partner, now: datetime) -> Periods:
    """The periods `partner`'s caps count `now` in (`now` must be timezone-aware)."""
    local = aware(now).astimezone(ZoneInfo(partner.timezone))
    year, week, _ = local.isocalendar()
    return Periods(local.date().isoformat(), f"{year:04d}-W{week:02d}", local.strftime("%Y-%m"))


class Usage(NamedTuple):
    """What a partner has bought in its current periods."""

    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    spent_today: Decimal = Decimal(0)


# The usage of many partners in one go (one read, not one per partner); a missing id: none.
UsageLookup = Callable[[Sequence[Partner], datetime], Mapping[int, Usage]]


def cap_exclusion(partner: Partner, usage: Usage) -> str | None:
    """The cap `partner` has reached with `usage`, or None; a cap of 0 is no cap."""
    caps = partner.caps
    if caps.daily and usage.daily >= caps.daily:
        return DAILY_CAP
    if caps.weekly and usage.weekly >= caps.weekly:
        return WEEKLY_CAP
    if caps.monthly and usage.monthly >= caps.monthly:
        return MONTHLY_CAP
    if caps.daily_budget and usage.spent_today + partner.price > caps.daily_budget:
        return DAILY_BUDGET
    return None

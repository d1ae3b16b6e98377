"""`pingpost report`: per vendor and per partner, what the exchange did over some UTC days.

It reads the day figures the requests keep (`pingpost.store.figures`) by key with
BatchGetItem, and the vendors and partners (their tables are small); never the leads. The
pure part (`Period`, `keys`, `totals`) is what the tests check without AWS; the rendering is
in `report_render` (table, CSV) and `report_html` (the page with its charts).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from pingpost.store.figures import (
    Figures,
    bid_key,
    bids_keys,
    day,
    partner_key,
    vendor_keys,
)

_DAYS = re.compile(r"^([1-9][0-9]{0,3})d$")


@dataclass(frozen=True)
class Period:
    """The UTC days a report covers, `first` to `last`, both included."""

    first: date
    last: date

    @classmethod
    def of(cls, since: str, until: str | None, today: date) -> Period:
        """`since`: "7d" (the last 7 days, today included) or a day (YYYY-MM-DD); `until`: a
        day (today when None). ValueError says what is wrong."""
        last = _day(until, "--until") if until else today
        counted = _DAYS.match(since)
        first = last - timedelta(days=int(counted[1]) - 1) if counted else _day(since, "--since")
        if first > last:
            raise ValueError(f"--since {since} is after --until {last.isoformat()}")
        if (last - first).days >= 3660:
            raise ValueError("a report covers at most 10 years")
        return cls(first, last)

    def days(self) -> list[date]:
        """Every day of the period, in order."""
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} takes Nd (e.g. 7d) or a day YYYY-MM-DD, not {text!r}") from None


@dataclass(frozen=True)
class Row:
    """One line of the report: a vendor's or a partner's figures over the period."""

    kind: str  # "vendor" or "partner"
    id: str
    name: str
    figures: Figures


@dataclass(frozen=True)
class Report:
    """The figures of a period: per vendor, per partner and per day (all of them)."""

    period: Period
    vendors: list[Row]
    partners: list[Row]
    days: dict[date, Figures]


def keys(days: Sequence[date], vendor_ids: Iterable[str], partner_ids: Iterable[int]) -> list[str]:
    """The keys of every day item the report reads: each vendor's day (under any key it may
    be, `figures.vendor_keys`) and each partner's day."""
    vendor_ids, partner_ids = list(vendor_ids), list(partner_ids)
    out = []
    for on in map(day, days):
        out += [k for v in vendor_ids for k in [*vendor_keys(v, on), *bids_keys(v, on)]]
        out += [partner_key(p, on) for p in partner_ids]
    return out


def _sum(found: Mapping[str, Figures], wanted: Iterable[str]) -> Figures:
    total = Figures()
    for key in wanted:
        total += found.get(key, Figures())
    return total


def totals(
    period: Period,
    vendors: Mapping[str, str],
    partners: Mapping[int, str],
    found: Mapping[str, Figures],
) -> Report:
    """Add up the day items `found` (by key) per vendor, per partner and per day.

    `vendors` and `partners` map IDs to names. A day's pings, posts, sales, revenue and margin
    are its vendors' (a sale is in its partner's day too: counted once); its deliveries failed
    and parked are its partners'. A partner's bidding figures are what the auctions of every
    vendor's leads counted of it, and its own posts won and accepted.
    """
    days = period.days()
    vendor_rows = [
        Row("vendor", v, name, _sum(found, (k for d in days for k in _vendor_keys(v, d))))
        for v, name in sorted(vendors.items())
    ]
    # What the auctions counted of the buyers is on the vendors' bids items (see figures).
    asked = (k for v in vendors for d in days for k in bids_keys(v, day(d)))
    auctions = _sum(found, asked).bids
    partner_rows = [
        Row("partner", str(p), name, _with_bids(p, auctions, days, found))
        for p, name in sorted(partners.items())
    ]
    by_day = {}
    for d in days:
        sold = _sum(found, (k for v in vendors for k in _vendor_keys(v, d)))
        delivered = _sum(found, (partner_key(p, day(d)) for p in partners))
        by_day[d] = sold + Figures(failed=delivered.failed, parked=delivered.parked)
    return Report(period, vendor_rows, partner_rows, by_day)


def _with_bids(
    partner_id: int,
    auctions: Mapping[str, Decimal],
    days: Sequence[date],
    found: Mapping[str, Figures],
) -> Figures:
    """A partner's figures: its day items', with what the vendors' auctions counted of it."""
    own = _sum(found, (partner_key(partner_id, day(d)) for d in days))
    prefix = bid_key(partner_id, "")
    asked = {k: v for k, v in auctions.items() if k.startswith(prefix)}
    return own + Figures(bids=asked)


def _vendor_keys(vendor_id: str, on: date) -> list[str]:
    return vendor_keys(vendor_id, day(on))


def read(period: Period) -> Report:
    """The report of a period, from the tables of the standard AWS environment."""
    from pingpost.store import figures, partners, vendors

    vendor_names = {v.id: v.name or v.id for v in vendors.all_vendors()}
    partner_names = {p.id: p.company or str(p.id) for p in partners.all_partners()}
    found = figures.read(keys(period.days(), vendor_names, partner_names))
    return totals(period, vendor_names, partner_names, found)


def report_command(args: argparse.Namespace) -> None:
    """Print the report of the period asked for; write its CSV and its HTML page if asked."""
    from pingpost_local.report_render import csv_text, table

    try:
        period = Period.of(args.since, args.until, datetime.now(UTC).date())
    except ValueError as error:
        raise SystemExit(f"pingpost: {error}") from None
    report = read(period)
    if args.csv == "-":
        print(csv_text(report), end="")
    else:
        print(table(report), end="")
    if args.csv and args.csv != "-":
        Path(args.csv).write_text(csv_text(report))
    if args.html:
        from pingpost_local.report_html import page

        Path(args.html).write_text(page(report))


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`pingpost report` on the command line."""
    command = commands.add_parser(
        "report", help="pings, match rate, posts, sales, revenue, margin, deliveries, per day"
    )
    command.add_argument(
        "--since", default="7d", help="Nd (the last N UTC days, today included) or YYYY-MM-DD"
    )
    command.add_argument("--until", help="the last UTC day, YYYY-MM-DD (default: today)")
    command.add_argument(
        "--csv", metavar="FILE", help="write the rows as CSV (- : standard output)"
    )
    command.add_argument("--html", metavar="FILE", help="write a page with the charts per day")
    command.set_defaults(handler=report_command)

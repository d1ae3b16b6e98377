"""`pingpost report` as text: the table on the terminal and the CSV rows.

Vendors have no deliveries and partners no pings or posts of their own (a vendor pings the
exchange, not a partner; counting each partner a ping matched would cost a write per partner
per ping), so those cells are "-" in the table and empty in the CSV. Partners that bid have a
block of their own in the table (BIDDING), and those columns in the CSV.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from decimal import Decimal

from pingpost.answers import money
from pingpost.store import figures as day_items
from pingpost.store.figures import Figures
from pingpost_local.report import Report, Row

# The partners' bidding columns (the table gives them a block of their own).
BIDDING = (
    "bids_asked",
    "bids_made",
    "bid_timeouts",
    "bids_won",
    "win_rate",
    "median_bid",
    "posts_accepted",
    "post_acceptance",
)
COLUMNS = (
    "kind",
    "id",
    "name",
    "pings",
    "matched",
    "match_rate",
    "posts",
    "sales",
    "revenue",
    "margin",
    "deliveries_failed",
    "parked",
    "returns",
    "return_rate",
    *BIDDING,
)
_HEADINGS = [
    "id",
    "name",
    "pings",
    "match_rate",
    "posts",
    "sales",
    "revenue",
    "margin",
    "failed",
    "parked",
    "returns",
    "return_rate",
]


def match_rate(figures: Figures) -> Decimal | None:
    """Matched pings per ping, None without pings."""
    return Decimal(figures.matched) / figures.pings if figures.pings else None


def return_rate(figures: Figures) -> Decimal | None:
    """Sales returned per sale over the period (a return counts on the day it was made), None
    without sales."""
    return Decimal(figures.returns) / figures.sales if figures.sales else None


def _rate(part: Decimal, whole: Decimal) -> str:
    return f"{part / whole:.4f}" if whole else ""


def bidding(row: Row) -> dict[str, str]:
    """A partner's bidding columns: buyers asked, bids made, timeouts, posts won (a post of
    the lead: its bid won), win rate (won per bid), the step its median bid falls in
    (`figures.bid_median`), posts accepted and the rate; empty for a vendor, and for a partner
    that was never asked (one that does not bid)."""
    counted = row.figures.bids
    if row.kind == "vendor" or not counted:
        return dict.fromkeys(BIDDING, "")

    def count(what: str) -> Decimal:
        return counted.get(day_items.bid_key(row.id, what), Decimal(0))

    made = day_items.bids_made(counted, row.id)
    won, took = count(day_items.WON), count(day_items.ACCEPTED)
    median = day_items.bid_median(counted, row.id)
    return {
        "bids_asked": str(count(day_items.ASKED)),
        "bids_made": str(made),
        "bid_timeouts": str(count(day_items.TIMEOUTS)),
        "bids_won": str(won),
        "win_rate": _rate(won, made),
        "median_bid": "" if median is None else f"{money(median[0])}-{money(median[1])}",
        "posts_accepted": str(took),
        "post_acceptance": _rate(took, won),
    }


def cells(row: Row) -> dict[str, str]:
    """A row's values by column, as the CSV writes them ("" where it has none)."""
    f = row.figures
    rate = match_rate(f)
    vendor = row.kind == "vendor"
    return {
        "kind": row.kind,
        "id": row.id,
        "name": row.name,
        "pings": str(f.pings) if vendor else "",
        "matched": str(f.matched) if vendor else "",
        "match_rate": f"{rate:.4f}" if vendor and rate is not None else "",
        "posts": str(f.posts) if vendor else "",
        "sales": str(f.sales),
        "revenue": money(f.revenue),
        "margin": money(f.margin),
        "deliveries_failed": "" if vendor else str(f.failed),
        "parked": "" if vendor else str(f.parked),
        "returns": str(f.returns),
        "return_rate": "" if (returned := return_rate(f)) is None else f"{returned:.4f}",
    } | bidding(row)


def csv_text(report: Report) -> str:
    """The vendors' rows, then the partners', under a header of COLUMNS."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in [*report.vendors, *report.partners]:
        writer.writerow(cells(row))
    return out.getvalue()


def _line(row: Row) -> list[str]:
    c = cells(row)
    rate = match_rate(row.figures)
    shown = f"{rate * 100:.1f}%" if c["match_rate"] and rate is not None else "-"
    values = [c["id"], c["name"], c["pings"], shown, c["posts"], c["sales"]]
    values += [c["revenue"], c["margin"], c["deliveries_failed"], c["parked"], c["returns"]]
    returned = return_rate(row.figures)
    values.append("" if returned is None else f"{returned * 100:.1f}%")
    return [v if v else "-" for v in values]


def _bidding_line(row: Row) -> list[str]:
    c = bidding(row)
    for rate in ("win_rate", "post_acceptance"):
        c[rate] = f"{Decimal(c[rate]) * 100:.1f}%" if c[rate] else ""
    return [v if v else "-" for v in (row.id, row.name, *(c[k] for k in BIDDING))]


def _block(
    title: str,
    rows: list[Row],
    headings: Sequence[str] = _HEADINGS,
    cells_of: Callable[[Row], list[str]] = _line,
) -> list[str]:
    lines = [[h.replace("_", " ") for h in headings]] + [cells_of(r) for r in rows]
    if not rows:
        return [title, "  (none)"]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headings))]
    text = [title]
    for line in lines:
        # Names and IDs to the left, figures to the right.
        parts = [
            v.ljust(w) if i < 2 else v.rjust(w)
            for i, (v, w) in enumerate(zip(line, widths, strict=True))
        ]
        text.append("  " + "  ".join(parts).rstrip())
    return text


def table(report: Report) -> str:
    """The report as the terminal shows it: a block of vendors and one of partners."""
    period = report.period
    head = f"pingpost report: {period.first.isoformat()} to {period.last.isoformat()} (UTC days)"
    lines = [head, "", *_block("Vendors", report.vendors), ""]
    lines += _block("Partners", report.partners)
    bidders = [r for r in report.partners if r.figures.bids]
    if bidders:
        headings = ["id", "name", *(k.replace("bids_", "").replace("bid_", "") for k in BIDDING)]
        lines += ["", *_block("Partners that bid", bidders, headings, _bidding_line)]
    return "\n".join(lines) + "\n"

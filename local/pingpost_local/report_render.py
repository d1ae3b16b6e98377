"""`pingpost report` as text: the table on the terminal and the CSV rows.

Vendors have no deliveries and partners no pings or posts of their own (a vendor pings the
exchange, not a partner; counting each partner a ping matched would cost a write per partner
per ping), so those cells are "-" in the table and empty in the CSV.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from pingpost.answers import money
from pingpost.store.figures import Figures
from pingpost_local.report import Report, Row

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
    }


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


def _block(title: str, rows: list[Row]) -> list[str]:
    lines = [[h.replace("_", " ") for h in _HEADINGS]] + [_line(r) for r in rows]
    if not rows:
        return [title, "  (none)"]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADINGS))]
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
    return "\n".join(lines) + "\n"

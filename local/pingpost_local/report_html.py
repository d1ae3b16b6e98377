"""`pingpost report --html`: one self-contained page, its charts drawn by matplotlib as inline
SVG (no script, no style sheet, no image or font fetched from anywhere), its tables the
report's rows."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from typing import Any

from pingpost_local.report import Report
from pingpost_local.report_render import COLUMNS, cells, match_rate

# What matplotlib writes before and around the drawing: the XML declaration, the DOCTYPE (a
# URL) and the RDF metadata (more URLs); the page needs the <svg> element alone.
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def _svg(figure: Any) -> str:
    """A figure as an <svg> element to put in the page."""
    out = io.StringIO()
    figure.savefig(out, format="svg", bbox_inches="tight")
    text = out.getvalue()
    return _METADATA.sub("", text[text.index("<svg") :])


def _chart(title: str, labels: Sequence[str], lines: dict[str, list[float]], unit: str) -> str:
    """A line chart of some series per day, as inline SVG."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display
    matplotlib.rcParams["svg.hashsalt"] = "pingpost-report"  # the same ids on every run
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 3))
    try:
        # Days as positions, so that a day without a value (no pings) keeps its place.
        for name, values in lines.items():
            axes.plot(range(len(labels)), values, marker="o", label=name)
        axes.set_xticks(range(len(labels)), labels)
        axes.set_title(title)
        axes.set_ylabel(unit)
        axes.set_ylim(bottom=0)
        axes.grid(axis="y", alpha=0.3)
        axes.legend(loc="upper left")
        axes.tick_params(axis="x", labelrotation=45)
        return _svg(figure)
    finally:
        pyplot.close(figure)


def charts(report: Report) -> list[str]:
    """Volume, match rate and revenue per day, as inline SVG."""
    days = list(report.days)
    labels = [d.isoformat() for d in days]
    per_day = [report.days[d] for d in days]
    rates = [match_rate(f) for f in per_day]
    return [
        _chart(
            "Volume per day",
            labels,
            {
                "pings": [f.pings for f in per_day],
                "posts": [f.posts for f in per_day],
                "sales": [f.sales for f in per_day],
            },
            "leads",
        ),
        _chart(
            "Match rate per day",
            labels,
            {"match rate": [float("nan") if r is None else float(r * 100) for r in rates]},
            "% of pings matched",
        ),
        _chart(
            "Revenue per day",
            labels,
            {
                "revenue": [float(f.revenue) for f in per_day],
                "margin": [float(f.margin) for f in per_day],
            },
            "partners' prices",
        ),
    ]


def _table(title: str, rows: list[dict[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS[1:])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(r[c])}</td>" for c in COLUMNS[1:]) + "</tr>"
        for r in rows
    )
    return f"<h2>{html.escape(title)}</h2>\n<table>\n<tr>{head}</tr>\n{body}\n</table>\n"


def page(report: Report) -> str:
    """The whole page: the charts, then the vendors' and the partners' tables."""
    period = f"{report.period.first.isoformat()} to {report.period.last.isoformat()}"
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}"
        "svg{max-width:100%;height:auto;display:block}"
    )
    figures = "\n".join(f"<figure>{svg}</figure>" for svg in charts(report))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>pingpost report {period}</title>\n<style>{style}</style>\n</head>\n<body>\n"
        f"<h1>pingpost report: {period} (UTC days)</h1>\n{figures}\n"
        + _table("Vendors", [cells(r) for r in report.vendors])
        + _table("Partners", [cells(r) for r in report.partners])
        + "</body>\n</html>\n"
    )

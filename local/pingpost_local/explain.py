"""What the operator reads about a lead: its data, its timeline, its sales and every decision."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pingpost.answers import money
from pingpost.fields import TABLES, table
from pingpost.leadtypes import standard
from pingpost.models import Partner, Vendor
from pingpost.store.leads import Lead

# Personal consent evidence (the consumer's IP address), whatever the lead type.
_PERSONAL_CONSENT = frozenset(
    f.consent for t in TABLES.values() for f in t.fields if f.pii and f.consent
)
# Names that are personal data in any lead type (or the fields they share), with their
# aliases: an extra field of a lead under one of them is masked too.
_PERSONAL_ANYWHERE = frozenset(
    name for t in TABLES.values() for f in t.fields if f.pii for name in (f.name, *f.aliases)
) | {name for name, entry in standard().items() if entry.get("pii")}


def mask(value: str) -> str:
    """Personal data as the operator's views show it: enough to recognise, not to use."""
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if value.isdigit() and len(value) >= 7:
        return "*" * (len(value) - 4) + value[-4:]
    if value.count(".") == 3:  # an IPv4 address: keep the network
        return ".".join([*value.split(".")[:2], "*", "*"])
    return value[:1] + "".join("*" if c.isalnum() else c for c in value[1:])


def _when(ms: float) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _rows(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def lead_report(lead: Lead, partners: Mapping[int, Partner], *, personal: bool = False) -> str:
    """The lead (personal data masked unless `personal`), its timeline, sales and decisions."""
    lines = [
        f"Lead {lead.lead_id}  vendor {lead.vendor_id}  status {lead.status}"
        f"  test {'yes' if lead.test else 'no'}",
        f"Created {_when(lead.created_at)} UTC  cost {money(lead.cost)}"
        f"  times sold {lead.times_sold}",
        "",
        "Data" + ("" if personal else " (personal data masked; --pii shows it)"),
    ]
    fields = table(lead.data)
    order = fields.order
    data = sorted(lead.data.items(), key=lambda item: order.get(item[0], len(order)))
    shown = [
        (name, value if personal or not fields.by_name[name].pii else mask(value))
        for name, value in data
        if name in fields.by_name
    ]
    shown += [
        (f"{name} (extra)", value if personal or name not in _PERSONAL_ANYWHERE else mask(value))
        for name, value in sorted(lead.extra.items())
    ]
    lines += _rows(shown) if shown else ["  (none)"]
    lines += ["", "Consent"]
    lines += _rows(_consent(lead, personal=personal)) if lead.consent else ["  (none)"]
    lines += ["", "Timeline"]
    events = [(_when(e["at"]), str(e["event"]), str(e["detail"])) for e in lead.timeline]
    lines += _rows(events) if events else ["  (none)"]
    if lead.bids:
        lines += ["", "Bids (every buyer asked, best first)"]
        lines += _rows([_bid_row(pid, record, partners) for pid, record in _by_bid(lead.bids)])
    lines += ["", "Sales"]
    returned = {int(r["partner_id"]): r for r in lead.returns}
    sales = [
        (
            f"partner {sale['partner_id']}",
            _company(partners, sale["partner_id"]),
            money(Decimal(sale["price"])),
            _returned(returned.get(int(sale["partner_id"]))),
        )
        for sale in lead.sales
    ]
    lines += _rows(sales) if sales else ["  (none)"]
    lines += ["", "Decisions (every partner considered)"]
    decisions = [("partner", "company", "decision")] + [
        (str(pid), _company(partners, int(pid)), str(verdict)) for pid, verdict in lead.decisions
    ]
    lines += _rows(decisions) if lead.decisions else ["  (none)"]
    considered = {int(pid) for pid, _ in lead.decisions}
    others = sorted(pid for pid in partners if pid not in considered)
    if others:
        lines += [
            "Not considered: their lead types, state or product filters exclude this lead:",
            "  " + ", ".join(str(pid) for pid in others),
        ]
    return "\n".join(lines) + "\n"


def _by_bid(asked: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    """The bids, highest first, then the buyers that made none."""
    return sorted(asked.items(), key=lambda kv: (-Decimal(kv[1].get("price", -1)), int(kv[0])))


def _bid_row(
    partner_id: str, record: Mapping[str, Any], partners: Mapping[int, Partner]
) -> tuple[str, ...]:
    """A buyer asked: its bid and token (masked: a token may buy the lead), or why it made none,
    and how long it took."""
    if record.get("outcome") == "bid":
        token = str(record.get("token", ""))
        said = f"bid {money(Decimal(record['price']))}"
        kept = f"token {token[:2]}***{token[-2:]}" if len(token) > 6 else "token ***"
    else:
        reason = str(record.get("reason", ""))
        said, kept = str(record.get("outcome")) + (f": {reason}" if reason else ""), ""
    company = _company(partners, int(partner_id))
    return (f"partner {partner_id}", company, said, kept, f"{record.get('ms', '?')} ms")


def _returned(record: Mapping[str, Any] | None) -> str:
    """A sale's return, if it was: when and why."""
    if record is None:
        return ""
    return f"returned {_when(record['at'])[:10]}: {record.get('reason', '')}"


def _consent(lead: Lead, *, personal: bool) -> list[tuple[str, str]]:
    """The consent record's evidence, then when it was recorded."""
    rows = [
        (key, str(value) if personal or key not in _PERSONAL_CONSENT else mask(str(value)))
        for key, value in lead.consent.items()
        if key != "at"
    ]
    return [*rows, ("at", _when(lead.consent["at"]) + " UTC")]


def _company(partners: Mapping[int, Partner], partner_id: int) -> str:
    partner = partners.get(int(partner_id))
    return partner.company if partner is not None else "(unknown partner)"


def partner_table(partners: Sequence[Partner]) -> str:
    """One line a partner: what it buys, at what price, within which caps."""
    head = ("id", "company", "price", "active", "test", "priority", "states", "products")
    rows = [(*head, "caps", "types")]
    for p in sorted(partners, key=lambda p: p.id):
        caps = p.caps
        rows.append(
            (
                str(p.id),
                p.company,
                money(p.price),
                "yes" if p.active else "no",
                "yes" if p.test else "no",
                str(p.priority),
                ",".join(p.filters.states) or "any",
                _few(p.filters.products),
                f"d{caps.daily} w{caps.weekly} m{caps.monthly} ${money(caps.daily_budget)}/day",
                ",".join(p.lead_types) or "(none)",
            )
        )
    return "\n".join(_rows(rows, indent="")) + "\n"


def vendor_table(vendors: Sequence[Vendor]) -> str:
    """One line a vendor: its pricing, how its answers read, where its forms may send browsers."""
    head = ("id", "name", "active", "cost", "pricing", "answers", "http errors")
    rows = [(*head, "redirect hosts", "types")]
    for v in sorted(vendors, key=lambda v: v.id):
        margin = f"{money(v.margin)} a sale" if v.margin_type == "amount" else f"{v.margin}%"
        pricing = f"dynamic, margin {margin}" if v.dynamic_pricing else "fixed"
        rows.append(
            (
                v.id,
                v.name,
                "yes" if v.active else "no",
                money(v.cost),
                pricing,
                v.response_style,
                "yes" if v.http_errors else "no (200)",
                ",".join(v.redirect_hosts) or "(none)",
                "any" if v.lead_types is None else ",".join(v.lead_types) or "(none)",
            )
        )
    return "\n".join(_rows(rows, indent="")) + "\n"


def _few(values: Sequence[str], most: int = 3) -> str:
    if not values:
        return "any"
    more = f" (+{len(values) - most})" if len(values) > most else ""
    return "; ".join(values[:most]) + more

"""Returns: a partner gives back a lead it bought, within its `return_days` of the sale.

The sale is marked returned on the lead (with the reason), what the sale counted is given back
(one less sold and its price less spent in the partner's counters of the periods it was sold
in, as the lead recorded them: its caps and daily budget free again), and the day of the return
takes the sale's price off the vendor's and the partner's revenue and margin (the exchange gave
the price back; what it owes the vendor is unchanged), with one return counted. A second return
of the same sale changes nothing and says so. A partner authenticates with its return key,
`<partner ID>.<secret>`, of which only the hash is stored (`pingpost partners rotate-key`).
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from pingpost.errors import InvalidRequest, LeadNotFound, PingPostError, Unauthorized
from pingpost.fields import MAX_COUNT_DIGITS
from pingpost.models import Partner, key_hash
from pingpost.store import sales
from pingpost.store.deliveries import RESERVED
from pingpost.store.figures import Figures, partner_day, vendor_day
from pingpost.store.leads import Lead
from pingpost.stores import STORES, Stores

RETURNED, UNCHANGED = "returned", "returned already"
MOST_REASON = 200
_MOST_ID = 10**MAX_COUNT_DIGITS  # IDs are counted up from 1: a larger one is nobody's


class ReturnRefused(PingPostError):
    """A return the partner may not make (no returns, or past its window)."""

    status = 422


def partner_of(key: str | None, stores: Stores = STORES) -> Partner:
    """The partner whose return key this is; Unauthorized otherwise (compared in constant
    time, and the same answer whether the partner or the secret is wrong)."""
    refused = Unauthorized("Invalid return key")
    named, _, secret = (key or "").partition(".")
    if not (named.isascii() and named.isdigit() and len(named) <= MAX_COUNT_DIGITS and secret):
        raise refused
    partner = stores.partners.by_id(int(named))
    known = partner.return_key_hash if partner is not None else None
    if partner is None or known is None or not hmac.compare_digest(known, key_hash(key or "")):
        raise refused
    return partner


def reason_of(text: object) -> str:
    """The reason a return gives, stripped: text of 1 to 200 characters, else InvalidRequest."""
    reason = text.strip() if isinstance(text, str) else ""
    try:
        reason.encode("utf-8")
    except UnicodeEncodeError:
        reason = ""  # a lone surrogate, from JSON's \\ud800
    if not reason or len(reason) > MOST_REASON:
        raise InvalidRequest([f"reason must be text of 1 to {MOST_REASON} characters"])
    return reason


def _charged(lead: Lead, partner: Partner) -> dict[str, Any]:
    """What the sale to the partner counted, and when (epoch ms). A sale recorded before leads
    kept it: its sale's event on the timeline (else the lead's creation), and the counters of
    the partner's settings now."""
    key = str(partner.id)
    if key in lead.charged:
        return sales.charge_of(partner.id, lead.charged[key])
    prefix = f"sold to partner {partner.id} "
    times = [
        int(e["at"])
        for e in lead.timeline
        if e.get("event") == "sale" and str(e.get("detail", "")).startswith(prefix)
    ]
    at = times[0] if times else lead.created_at
    return {"at": at, "counters": [] if lead.test else sales.counted_in(partner, _time(at))}


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def give_back(
    partner: Partner,
    lead_id: int,
    reason: str,
    now: datetime | None = None,
    stores: Stores = STORES,
) -> str:
    """Return the lead the partner bought: RETURNED, or UNCHANGED when it was returned already;
    raises LeadNotFound (it did not buy it, or its sale awaits the buyer's answer) or
    ReturnRefused (no returns, past the window)."""
    now = now or datetime.now(UTC)
    reason = reason_of(reason)
    lead = stores.leads.get(lead_id) if 0 < lead_id < _MOST_ID else None
    for _ in range(3):  # a refused write is read again: returned meanwhile, or not a sale
        if lead is not None and any(int(r["partner_id"]) == partner.id for r in lead.returns):
            return UNCHANGED
        price = None if lead is None else lead.sold_to.get(str(partner.id))
        held = lead is not None and lead.deliveries.get(str(partner.id), {}).get("state")
        if lead is None or price is None or held == RESERVED:
            raise LeadNotFound(f"Partner {partner.id} did not buy lead {lead_id}")
        if not partner.return_days:
            raise ReturnRefused(f"Partner {partner.id} takes no returns (return_days is 0)")
        charged = _charged(lead, partner)
        sold = _time(charged["at"])
        if (now - sold).total_seconds() > partner.return_days * 86_400:
            raise ReturnRefused(
                f"Lead {lead_id} was sold on {sold.date().isoformat()}: past the"
                f" {partner.return_days} days partner {partner.id} may return it in"
            )
        taken = Figures(returns=1, revenue=-price, margin=-price)
        tallies = [
            vendor_day(lead.vendor_id, now, taken),
            partner_day(partner.id, now, taken),
        ]
        at = int(now.timestamp() * 1000)
        record: dict[str, Any] = {"partner_id": partner.id, "at": at, "reason": reason}
        record["price"] = price
        counted = [] if lead.test else tallies
        if stores.sales.give_back(lead_id, partner.id, charged, record, counted):
            return RETURNED
        lead = stores.leads.get(lead_id)
    raise LeadNotFound(f"Partner {partner.id} did not buy lead {lead_id}")

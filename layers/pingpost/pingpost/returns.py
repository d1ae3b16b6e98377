"""Returns: a partner gives back a lead it bought, within its `return_days` of the sale.

The sale is marked returned on the lead (with the reason), the partner's count and spend of the
sale's periods are given back (its caps and daily budget free again), and the day of the return
takes the sale's price off the vendor's and the partner's revenue and margin (the exchange gave
the price back; what it owes the vendor is unchanged), with one return counted. A second return
of the same sale changes nothing and says so. A partner authenticates with its return key,
`<partner ID>.<secret>`, of which only the hash is stored (`pingpost partners rotate-key`).
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from pingpost.errors import LeadNotFound, PingPostError, Unauthorized
from pingpost.models import Partner, key_hash
from pingpost.store import sales
from pingpost.store.figures import Figures, partner_day, vendor_day
from pingpost.stores import STORES, Stores

RETURNED, UNCHANGED = "returned", "returned already"


class ReturnRefused(PingPostError):
    """A return the partner may not make (no returns, or past its window)."""

    status = 422


def partner_of(key: str | None, stores: Stores = STORES) -> Partner:
    """The partner whose return key this is; Unauthorized otherwise (compared in constant
    time, and the same answer whether the partner or the secret is wrong)."""
    refused = Unauthorized("Invalid return key")
    if not key or "." not in key:
        raise refused
    named, _ = key.split(".", 1)
    partner = stores.partners.by_id(int(named)) if named.isdigit() else None
    known = partner.return_key_hash if partner is not None else None
    if partner is None or known is None or not hmac.compare_digest(known, key_hash(key)):
        raise refused
    return partner


def sold_at(lead_timeline: list[dict[str, object]], created_at: int, partner_id: int) -> datetime:
    """When the lead was sold to the partner: its sale's event on the timeline (the lead's
    creation when it has none)."""
    prefix = f"sold to partner {partner_id} "
    times = [
        int(str(e["at"]))
        for e in lead_timeline
        if e.get("event") == "sale" and str(e.get("detail", "")).startswith(prefix)
    ]
    return datetime.fromtimestamp((times[0] if times else created_at) / 1000, UTC)


def give_back(
    partner: Partner,
    lead_id: int,
    reason: str,
    now: datetime | None = None,
    stores: Stores = STORES,
) -> str:
    """Return the lead the partner bought: RETURNED, or UNCHANGED when it was returned already;
    raises LeadNotFound (it did not buy it) or ReturnRefused (no returns, past the window)."""
    now = now or datetime.now(UTC)
    lead = stores.leads.get(lead_id)
    price = None if lead is None else lead.sold_to.get(str(partner.id))
    if lead is None or price is None:
        raise LeadNotFound(f"Partner {partner.id} did not buy lead {lead_id}")
    if not partner.return_days:
        raise ReturnRefused(f"Partner {partner.id} takes no returns (return_days is 0)")
    sold = sold_at(lead.timeline, lead.created_at, partner.id)
    if (now - sold).total_seconds() > partner.return_days * 86_400:
        raise ReturnRefused(
            f"Lead {lead_id} was sold on {sold.date().isoformat()}: past the"
            f" {partner.return_days} days partner {partner.id} may return it in"
        )
    taken = Figures(returns=1, revenue=-price, margin=-price)
    tallies = [
        vendor_day(lead.vendor_id, lead_id, now, taken),
        partner_day(partner.id, now, taken),
    ]
    why = stores.sales.give_back(lead_id, partner, sold, reason, now, tallies)
    if why == sales.NOT_SOLD:
        raise LeadNotFound(f"Partner {partner.id} did not buy lead {lead_id}")
    return UNCHANGED if why == sales.RETURNED else RETURNED

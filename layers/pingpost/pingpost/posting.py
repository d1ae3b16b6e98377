"""Selling a lead to a buyer that won it by its bid (pingpost.auction): the sale reserved, the
buyer posted the lead, then the sale confirmed when it accepted or released when not (and a
reservation a dead post left, given back). `pingpost.selling` decides whom to sell to, in turn.

One reservation's fate is always recorded on the lead, or the lead is left posting for the next
post of it or the sweep: a write whose answer was lost counts as made when the lead shows it,
and a reservation is given back under the claim of whoever holds the lead, once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from pingpost import auction
from pingpost.answering import event
from pingpost.clock import now_ms as _now_ms
from pingpost.models import Partner
from pingpost.observability import logger, metrics
from pingpost.store import figures, sales
from pingpost.store.deliveries import DELIVERED, RELEASED, RESERVED
from pingpost.store.figures import Figures, Tally
from pingpost.store.leads import Lead
from pingpost.stores import Stores


class Unsettled(Exception):
    """A reservation whose fate this post could not learn or record (DynamoDB failing on every
    try): the post stops selling and leaves the lead posting, for the next post of it or the
    sweep, which give back whatever is still reserved."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


_WRITE_ATTEMPTS = 5
# How long after its post's time a reservation may still be settled by its post (its last
# writes): until then, nobody takes the lead over or sweeps it as dead.
_SETTLING_SECONDS = 15


def abandon(
    stores: Stores, lead: Lead, token: str, timeline: list[dict[str, Any]], now: datetime
) -> dict[int, str]:
    """Give back the sales still reserved on a lead this post took over (their post died): the
    verdicts on their buyers, and on those posted before (never posted this lead again)."""
    verdicts: dict[int, str] = {}
    why = "abandoned: the post that reserved it died; not posted again"
    for partner_id, record in list(lead.deliveries.items()):
        if record.get("state") != RESERVED:
            continue
        _settle(stores, lead, token, int(partner_id), RELEASED, why, record)
        lead.sold_to.pop(partner_id, None)
        lead.deliveries[partner_id] = {"state": RELEASED, "detail": why}
        verdicts[int(partner_id)] = why
        timeline.append(event(now, "post", f"to partner {partner_id}: {why}"))
    for partner_id, record in lead.deliveries.items():
        if record.get("state") == RELEASED and int(partner_id) not in verdicts:
            verdicts[int(partner_id)] = f"posted before, not again: {record.get('detail', '')}"
    return verdicts


def sell_on_bid(
    stores: Stores,
    lead: Lead,
    token: str,
    partner: Partner,
    won: Mapping[str, Any],
    now: datetime,
    limits: tuple[int, float],
    consumer: Mapping[str, str],
    tallies: Sequence[Tally],
) -> tuple[str | None, list[dict[str, Any]]]:
    """Sell the lead to a buyer that won it by its bid (`won`: the lead's record of the bid):
    reserve the sale (caps, budget, dedupe, times sold, as any sale), post the buyer the lead,
    then confirm the sale (counting `tallies`, its day figures) when it accepted or release it
    when not. Why it was not sold (None: sold), and the timeline's account. Raises Unsettled
    when the reservation's fate cannot be recorded.

    `limits`: the times the lead may be sold, and when the posts' time (`post_timeout`) ends.
    """
    allowed, ends = limits
    left = ends - time.monotonic()
    if left <= 0:
        return "not posted: the post's time was spent", []
    # Due when the post can no longer be running, counted from now (the auction of a full
    # request may have taken a while since `now`, the request's time).
    until = _now_ms() + int((left + _SETTLING_SECONDS) * 1000)
    record = sales.reservation(partner, now, consumer, until=until, test=lead.test)
    why = _reserve(stores, lead, token, partner, now, allowed, consumer, record)
    if why is not None:
        return why, []
    started = time.monotonic()
    try:
        # What is left once reserved (the reservation's write took some of it): the post ends
        # by `ends`, before its reservation is due.
        left = max(ends - time.monotonic(), 0.01)
        refused = auction.post(
            partner, lead.lead_id, lead.data, won, test=lead.test, seconds=left, stores=stores
        )
    except Exception as error:  # a defect of ours: the sale is released, not left reserved
        logger.exception("post to a buyer broke", extra={"partner_id": partner.id})
        refused = f"error: {type(error).__name__}"
    took = round((time.monotonic() - started) * 1000)
    said = f"to partner {partner.id}: " + ("accepted" if refused is None else refused)
    told = [event(now, "post", f"{said} ({took} ms)")]
    posted = _posted(partner.id, now, accepted=refused is None, test=lead.test)
    if refused is None:
        done = _settle(
            stores, lead, token, partner.id, DELIVERED, said, tallies=[*tallies, *posted]
        )
        if not done:
            return sales.LOST, told
        if not lead.test:
            count_sale(partner)
        return None, told
    why = f"post not accepted: {refused}"
    if not _settle(stores, lead, token, partner.id, RELEASED, why, record, tallies=posted):
        return sales.LOST, told
    return why, told


def _posted(partner_id: int, now: datetime, *, accepted: bool, test: bool) -> list[Tally]:
    """What a post to a buyer that won adds to its day (test leads count nothing): one post
    won, and accepted or not."""
    if test:
        return []
    won = {figures.bid_key(partner_id, figures.WON): Decimal(1)}
    if accepted:
        won[figures.bid_key(partner_id, figures.ACCEPTED)] = Decimal(1)
    return [figures.partner_day(partner_id, now, Figures(bids=won))]


def _reserve(
    stores: Stores,
    lead: Lead,
    token: str,
    partner: Partner,
    now: datetime,
    allowed: int,
    consumer: Mapping[str, str],
    record: Mapping[str, Any],
) -> str | None:
    """Reserve the sale (`record`: what the lead keeps of it); None when it is, else why not.
    A write whose answer was lost counts as made when the lead shows the reservation;
    Unsettled when the lead cannot be read."""
    try:
        why = stores.sales.sell(
            lead.lead_id,
            token,
            partner,
            now,
            allowed=allowed,
            consumer=consumer,
            test=lead.test,
            reserve=record,
        )
    except (ClientError, BotoCoreError) as error:
        again = reread(stores, lead.lead_id)
        if again is None:
            raise Unsettled(error) from error
        if again.claim != token:
            return sales.LOST
        if again.deliveries.get(str(partner.id), {}).get("state") == RESERVED:
            return None  # it was written; its answer was lost
        if not again.sold_to:
            raise  # nothing sold, nothing held: the publisher may retry (503)
        logger.exception("reservation failed; the lead's sales are answered")
        return sales.LOST
    if why is None or why in (sales.LOST, sales.TIMES_SOLD):
        return why
    return f"{why} (at sale)"


def _settle(
    stores: Stores,
    lead: Lead,
    token: str,
    partner_id: int,
    outcome: str,
    detail: str,
    record: Mapping[str, Any] | None = None,
    tallies: Sequence[Tally] = (),
) -> bool:
    """Confirm (DELIVERED) or release (RELEASED, `record`: the reservation) a reserved sale,
    tried again while DynamoDB fails; a write whose answer was lost counts as made when the
    lead shows it. False when this post no longer holds the lead; Unsettled when it never
    lands (the lead stays posting, its reservation for the next post or the sweep)."""
    failure: Exception | None = None
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            if outcome == DELIVERED:
                now_ms = _now_ms()
                done = stores.sales.confirm(
                    lead.lead_id, token, partner_id, detail, now_ms, tallies
                )
            else:
                done = stores.sales.release(
                    lead.lead_id, token, partner_id, record or {}, why=detail, tallies=tallies
                )
            if done:
                return True
        except (ClientError, BotoCoreError) as error:
            failure = error
            logger.warning("reservation not settled; retrying", extra={"try": attempt + 1})
        again = reread(stores, lead.lead_id)
        if again is not None:
            state = again.deliveries.get(str(partner_id), {}).get("state")
            if state == outcome and again.claim == token:
                return True  # it was written; its answer was lost
            if again.claim != token or state != RESERVED:
                return False
        time.sleep(0.05 * 2**attempt)
    raise Unsettled(failure or RuntimeError("reservation not settled"))


def count_sale(partner: Partner) -> None:
    """A sale this request made, in the metrics the dashboard shows (test leads' are not)."""
    metrics.add_metric(name="Sales", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Revenue", unit=MetricUnit.NoUnit, value=float(partner.price))


def reread(stores: Stores, lead_id: int) -> Lead | None:
    """The lead as stored (after a sale's answer was lost), or None if it cannot be read."""
    try:
        return stores.leads.get(lead_id)
    except (ClientError, BotoCoreError):
        return None

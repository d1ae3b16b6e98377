"""Selling a lead a request holds: matching it, each sale in turn, recording how it ended, and
queueing the sales' deliveries. `pingpost.exchange` decides when a request may sell."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from pingpost import answering, auction
from pingpost.answering import event
from pingpost.answers import Answer, money
from pingpost.matching import Criteria, Outcome, PartnerSet, match
from pingpost.models import SOLD, Partner, Vendor
from pingpost.observability import logger, metrics
from pingpost.store import figures, sales
from pingpost.store.deliveries import RELEASED, RESERVED
from pingpost.store.figures import Figures, Tally
from pingpost.store.leads import Lead
from pingpost.store.partners import Roster
from pingpost.store.queues import Delivery
from pingpost.stores import STORES, Stores


def match_lead(
    stores: Stores, lead: Criteria, now: datetime, roster: Roster | None = None
) -> Outcome:
    """Who may buy `lead` now, among the partners of `roster` (else the current ones)."""
    return match(lead, _indexed(roster or stores.partners.current()), now, stores.sales.usage)


# A roster is the same object until the partners change (and hashes by identity).
@lru_cache(maxsize=1)
def _indexed(roster: Roster) -> PartnerSet:
    """The active partners of the container's copy, indexed for matching once per copy."""
    return PartnerSet(p for p in roster.partners.values() if p.active)


def sell(
    stores: Stores,
    vendor: Vendor,
    lead: Lead,
    token: str,
    values: Mapping[str, object],
    criteria: Criteria,
    now: datetime,
    timeline: list[dict[str, Any]],
    *,
    full: bool = False,
    matched: tuple[Roster, Outcome] | None = None,
    rematched: Sequence[str] = (),
) -> Answer | None:
    """Sell a lead this request holds to the best partners that will take it, then record it.

    Sales an earlier post of the lead recorded stand and count; once a sale is recorded the
    answer says Matched, whatever fails after it (the outbox and the sweep finish the rest).
    None: the claim went stale and another post took the lead over; its outcome stands.
    `full`: a full request's lead, whose recorded outcome counts as its ping too.
    `matched`: the partners and the match the request already made of this lead, if it did.
    Partners that bid rank at the bids the lead recorded (pingpost.auction), unless the post
    changed what the lead was matched on (`rematched`): their bids priced another lead.
    """
    roster, outcome = matched or _matched(stores, criteria, now)
    bids = {} if rematched else lead.bids
    stale = f"its bid priced the ping's {', '.join(rematched)}, which the post changed"
    outcome = auction.priced(outcome, bids, lead.cost, missing=stale if rematched else None)
    allowed = answering.allowed(values, vendor)
    consumer = {
        k: str(values[f]) for k, f in (("email", "Email"), ("phone", "Home_Phone")) if f in values
    }
    ends = time.monotonic() + vendor.post_timeout  # the posts to buyers that won by their bids
    # A sale a post that died had reserved for its buyer's answer is given back, never posted
    # again: nobody knows what the buyer said.
    verdicts = _abandon(stores, lead, token, roster, consumer, timeline, now)
    # Every partner sold to counts, even one paused since.
    sold = [roster.partners[int(p)] for p in lead.sold_to if int(p) in roster.partners]
    verdicts |= {p.id: "sold" for p in sold}
    timeline += [event(now, "sale", f"sold to partner {p.id} by an earlier post") for p in sold]
    candidates = [p for p in outcome.ranked if p.id not in verdicts]
    # The lead as it ends and its answer, once this post's last sale wrote them with the sale.
    recorded: tuple[Lead, Answer] | None = None
    for n, partner in enumerate(candidates):
        if len(sold) >= allowed:
            break
        sale = event(now, "sale", f"sold to partner {partner.id} at {money(partner.price)}")
        won = bids.get(str(partner.id)) if partner.bids else None
        ending = None
        if won is not None:
            limits = (allowed, ends)
            why, said = _sell_on_bid(
                stores, vendor, lead, token, partner, won, now, limits, consumer, sold, full
            )
            timeline += said
        else:
            if len(sold) + 1 >= allowed or n == len(candidates) - 1:
                # If this sale is made it is the last: the lead as it then ends goes with it.
                ending = answering.ended(
                    vendor,
                    lead,
                    values,
                    outcome,
                    [*sold, partner],
                    verdicts | {partner.id: "sold"},
                    [*timeline, sale],
                    now,
                )
            tallies = _sale_tallies(vendor, lead, partner, now, sold, ending, full)
            why, ending = _sale(
                stores, lead, token, partner, now, allowed, consumer, ending, sold, tallies
            )
            if why is None and not lead.test:
                _count_sale(partner)
        if why is None or why == sales.ALREADY:
            sold.append(partner)
            verdicts[partner.id] = "sold"
            timeline.append(sale)
            recorded = ending if why is None else None
        elif why in (sales.LOST, sales.TIMES_SOLD):
            break
        else:
            verdicts[partner.id] = why if won is not None else f"{why} (at sale)"
    if recorded is not None:
        finished, answer = True, recorded[1]
    else:
        done, answer = answering.ended(vendor, lead, values, outcome, sold, verdicts, timeline, now)
        finished = _finish(stores, done, token, _ended_tallies(vendor, done, now, full))
    _queue(stores, lead.lead_id, sold, bids)
    return answer if finished else None


def _matched(stores: Stores, criteria: Criteria, now: datetime) -> tuple[Roster, Outcome]:
    """The partners now, and who of them may buy the lead."""
    roster = stores.partners.current()
    return roster, match_lead(stores, criteria, now, roster)


def _queue(
    stores: Stores, lead_id: int, sold: Sequence[Partner], bids: Mapping[str, object]
) -> None:
    """Queue every sale of the lead (again: a second message finds its sale delivered), but
    those made on a bid, which were posted: a lead that has only those leaves the outbox."""
    posted = {p.id for p in sold if p.bids and str(p.id) in bids}
    enqueue_sales(lead_id, [p.id for p in sold if p.id not in posted], stores)
    if sold and all(p.id in posted for p in sold):
        _leave_outbox(stores, lead_id)


def _abandon(
    stores: Stores,
    lead: Lead,
    token: str,
    roster: Roster,
    consumer: Mapping[str, str],
    timeline: list[dict[str, Any]],
    now: datetime,
) -> dict[int, str]:
    """Give back the sales still reserved on a lead this post took over (their post died): the
    verdicts on their buyers. Each is released under this post's claim, or it stays (and the
    sale with it) when it cannot be."""
    verdicts: dict[int, str] = {}
    for partner_id, record in lead.deliveries.items():
        partner = roster.partners.get(int(partner_id))
        if record.get("state") != RESERVED or partner is None:
            continue
        why = "abandoned: the post that reserved it died; not posted again"
        released = stores.sales.release(
            lead.lead_id, token, partner, record, consumer, test=lead.test, why=why
        )
        if released:
            lead.sold_to.pop(partner_id, None)
            verdicts[partner.id] = why
            timeline.append(event(now, "post", f"to partner {partner_id}: {why}"))
    # A buyer posted before (that said no, or whose post died) is not posted this lead again.
    for partner_id, record in lead.deliveries.items():
        if record.get("state") == RELEASED and int(partner_id) not in verdicts:
            verdicts[int(partner_id)] = f"posted before, not again: {record.get('detail', '')}"
    return verdicts


def _sell_on_bid(
    stores: Stores,
    vendor: Vendor,
    lead: Lead,
    token: str,
    partner: Partner,
    won: Mapping[str, Any],
    now: datetime,
    limits: tuple[int, float],
    consumer: Mapping[str, str],
    sold: Sequence[Partner],
    full: bool,
) -> tuple[str | None, list[dict[str, Any]]]:
    """Sell the lead to a buyer that won it by its bid: reserve the sale (caps, budget, dedupe,
    times sold, as any sale), post the buyer the lead, then confirm the sale when it accepted
    or release it when not. Why it was not sold (None: sold), and the timeline's account.

    `limits`: the times the lead may be sold, and when the posts' time (`post_timeout`) ends.
    """
    allowed, ends = limits
    left = ends - time.monotonic()
    if left <= 0:
        return "not posted: the post's time was spent", []
    why, _ = _sale(
        stores, lead, token, partner, now, allowed, consumer, None, sold, (), reserve=True
    )
    if why is not None:
        return why if why in (sales.LOST, sales.TIMES_SOLD) else f"{why} (at sale)", []
    started = time.monotonic()
    try:
        refused = auction.post(
            partner, lead.lead_id, lead.data, won, test=lead.test, seconds=left, stores=stores
        )
    except Exception as error:  # a defect of ours: the sale is released, not left reserved
        logger.exception("post to a buyer broke", extra={"partner_id": partner.id})
        refused = f"error: {type(error).__name__}"
    took = round((time.monotonic() - started) * 1000)
    said = f"to partner {partner.id}: " + ("accepted" if refused is None else refused)
    told = [event(now, "post", f"{said} ({took} ms)")]
    now_ms = int(now.timestamp() * 1000)
    if refused is None:
        tallies = _sale_tallies(vendor, lead, partner, now, sold, None, full)
        if not _retried(
            stores.sales.confirm, lead.lead_id, token, partner.id, said, now_ms, tallies
        ):
            return sales.LOST, told
        if not lead.test:
            _count_sale(partner)
        return None, told
    record = {"at": now_ms, "price": partner.price}
    why = f"post not accepted: {refused}"
    release = stores.sales.release
    if not _retried(
        release, lead.lead_id, token, partner, record, consumer, test=lead.test, why=why
    ):
        return sales.LOST, told
    return why, told


_WRITE_ATTEMPTS = 5


def _retried(write: Callable[..., bool], *args: Any, **kwargs: Any) -> bool:
    """A confirmation or release, tried again while DynamoDB fails (not when its condition
    fails: False, this post no longer holds the lead). When it never lands the error goes up:
    the lead stays with the reservation, which a later post or the sweep gives back."""
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            return write(*args, **kwargs)
        except (ClientError, BotoCoreError):
            if attempt == _WRITE_ATTEMPTS - 1:
                raise
            logger.warning("reservation not settled; retrying", extra={"try": attempt + 1})
            time.sleep(0.05 * 2**attempt)
    raise RuntimeError("unreachable")  # pragma: no cover


def _leave_outbox(stores: Stores, lead_id: int) -> None:
    """A lead whose sales were all posted has nothing to queue: out of the outbox now."""
    try:
        stores.deliveries.clear_outbox(lead_id, [])
    except (ClientError, BotoCoreError):
        logger.exception("outbox not cleared; the sweep will do it")


def _count_sale(partner: Partner) -> None:
    """A sale this request made, in the metrics the dashboard shows (test leads' are not)."""
    metrics.add_metric(name="Sales", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Revenue", unit=MetricUnit.NoUnit, value=float(partner.price))


def _sale_tallies(
    vendor: Vendor,
    lead: Lead,
    partner: Partner,
    now: datetime,
    sold: Sequence[Partner],
    ending: tuple[Lead, Answer] | None,
    full: bool,
) -> list[Tally]:
    """What a sale adds to the vendor's and the partner's day (test leads add nothing, as in
    `_count_sale`); the post's last sale adds the post's outcome too."""
    if lead.test:
        return []
    price = partner.price
    kept = answering.margin(vendor, price, lead.cost, first=not sold)
    sale = Figures(sales=1, revenue=price, margin=kept)
    ended = _ended_figures(ending[0], full) if ending else Figures()
    return [
        figures.vendor_day(vendor.id, lead.lead_id, now, sale + ended),
        figures.partner_day(partner.id, now, sale),
    ]


def _ended_figures(lead: Lead, full: bool) -> Figures:
    """What recording a post's outcome adds to its vendor's day: a post, and for a full
    request its ping as well (matched when it sold)."""
    if not full:
        return Figures(posts=1)
    return Figures(pings=1, matched=int(lead.status == SOLD), posts=1)


def _ended_tallies(vendor: Vendor, lead: Lead, now: datetime, full: bool) -> list[Tally]:
    """The day figures of a post whose outcome is recorded without a sale."""
    if lead.test:
        return []
    return [figures.vendor_day(vendor.id, lead.lead_id, now, _ended_figures(lead, full))]


def _sale(
    stores: Stores,
    lead: Lead,
    token: str,
    partner: Partner,
    now: datetime,
    allowed: int,
    consumer: Mapping[str, str],
    ending: tuple[Lead, Answer] | None,
    sold: Sequence[Partner],
    tallies: Sequence[Tally],
    *,
    reserve: bool = False,
) -> tuple[str | None, tuple[Lead, Answer] | None]:
    """Sell the lead to `partner` (ending the lead with the sale when `ending` is given).

    Returns why the sale was refused (None: sold) and the ending the sale recorded, if any.
    A write whose answer was lost counts as made when the lead shows the sale.
    """
    try:
        why = stores.sales.sell(
            lead.lead_id,
            token,
            partner,
            now,
            allowed=allowed,
            consumer=consumer,
            test=lead.test,
            finished=None if ending is None else ending[0],
            tallies=tallies,
            reserve=reserve,
        )
    except (ClientError, BotoCoreError):
        again = _reread(stores, lead.lead_id)
        if again is not None and str(partner.id) in again.sold_to:
            # The sale was applied; only its answer was lost. It ended the lead only if this
            # post's write made the sale (not a post that took the lead over meanwhile).
            return None, ending if again.ended_by == token else None
        if sold:
            logger.exception("sale failed; the lead's earlier sales are answered")
            return sales.LOST, None
        raise
    return why, ending


def _finish(stores: Stores, lead: Lead, token: str, tallies: Sequence[Tally]) -> bool:
    """Record the post's outcome (when its last sale did not); False when the claim was lost.
    Once a sale is recorded the answer stands, whatever fails here."""
    try:
        return stores.leads.finish(lead, token, tallies)
    except (ClientError, BotoCoreError):
        if lead.status != SOLD:
            raise  # nothing was sold: the publisher may retry
        logger.exception("lead not finished; its recorded sales are answered")
        return True


def _reread(stores: Stores, lead_id: int) -> Lead | None:
    """The lead as stored (after a sale's answer was lost), or None if it cannot be read."""
    try:
        return stores.leads.get(lead_id)
    except (ClientError, BotoCoreError):
        return None


def enqueue_sales(lead_id: int, partner_ids: list[int], stores: Stores = STORES) -> None:
    """Queue the delivery of a post's sales; the outbox keeps whatever SQS did not take."""
    if not partner_ids:
        return
    try:
        refused = stores.queues.enqueue([Delivery(lead_id, p) for p in partner_ids])
    except (ClientError, BotoCoreError):
        logger.exception("delivery queue unavailable; the outbox keeps the sales")
        return
    queued = set(partner_ids) - {d.partner_id for d in refused}
    if refused:
        logger.error("delivery queue refused messages; the outbox keeps them")
    try:
        stores.deliveries.clear_outbox(lead_id, queued)
    except (ClientError, BotoCoreError):
        # The sales stay in the outbox: the sweep sends them again, and a second message of a
        # sale finds it delivered or being sent.
        logger.exception("outbox not cleared; the sweep will send these sales again")

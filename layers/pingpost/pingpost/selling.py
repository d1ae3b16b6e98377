"""Selling a lead a request holds: matching it, each sale in turn, recording how it ended, and
queueing the sales' deliveries. `pingpost.exchange` decides when a request may sell."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pingpost import answering, auction
from pingpost.answering import event
from pingpost.answers import Answer, money
from pingpost.fields import table
from pingpost.matching import Criteria, Outcome
from pingpost.models import SOLD, Partner, Vendor
from pingpost.observability import logger
from pingpost.posting import Unsettled, abandon, count_sale, reread, sell_on_bid
from pingpost.store import figures, sales
from pingpost.store.figures import Figures, Tally
from pingpost.store.leads import Lead
from pingpost.store.queues import Delivery
from pingpost.stores import STORES, Stores, match_lead


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
    matched: Outcome | None = None,
    rematched: Sequence[str] = (),
) -> Answer | None:
    """Sell a lead this request holds to the best partners that will take it, then record it.

    Sales an earlier post of the lead recorded stand and count; once a sale is recorded the
    answer says Matched, whatever fails after it (the outbox and the sweep finish the rest).
    None: the claim went stale and another post took the lead over; its outcome stands.
    `full`: a full request's lead, whose recorded outcome counts as its ping too.
    `matched`: the match the request already made of this lead, if it did.
    Partners that bid rank at the bids the lead recorded (pingpost.auction), unless the post
    changed what the lead was matched on (`rematched`): their bids priced another lead.
    """
    outcome = matched or match_lead(stores, criteria, now)
    bids = {} if rematched else lead.bids
    stale = f"its bid priced the ping's {', '.join(rematched)}, which the post changed"
    outcome = auction.priced(outcome, bids, lead.cost, missing=stale if rematched else None)
    post = _Post(
        stores=stores,
        vendor=vendor,
        lead=lead,
        token=token,
        values=values,
        now=now,
        full=full,
        outcome=outcome,
        bids=bids,
        allowed=answering.allowed(values, vendor),
        consumer=table(values).consumer(values),
        ends=time.monotonic() + vendor.post_timeout,  # the posts to buyers that won by bids
        timeline=timeline,
    )
    try:
        recorded = post.sell_all()
    except Unsettled as stuck:
        if not post.sold:
            raise stuck.error from None
        # What this post sold stands (Matched); the lead stays posting, its reservation for
        # the next post of it or the sweep, which record its outcome and queue its sales.
        logger.error("a reservation could not be settled; the lead is left to the sweep")
        _, answer = answering.ended(
            vendor, lead, values, outcome, post.sold, post.verdicts, timeline, now
        )
        enqueue_sales(lead.lead_id, [p.id for p in post.sold if not post.by_bid(p)], stores)
        return answer
    if recorded is not None:
        finished, answer = True, recorded[1]
    else:
        done, answer = answering.ended(
            vendor, lead, values, outcome, post.sold, post.verdicts, timeline, now
        )
        finished = _finish(stores, done, token, _ended_tallies(vendor, done, now, full))
    _queue(stores, lead.lead_id, post.sold, bids)
    return answer if finished else None


@dataclass
class _Post:
    """One post selling its lead: what it holds, and what it sold and decided so far."""

    stores: Stores
    vendor: Vendor
    lead: Lead
    token: str
    values: Mapping[str, object]
    now: datetime
    full: bool
    outcome: Outcome
    bids: Mapping[str, Any]  # the bids the lead sells by ({} when they no longer hold)
    allowed: int
    consumer: Mapping[str, str]
    ends: float  # when the time to post buyers that won by their bids is up (monotonic)
    timeline: list[dict[str, Any]]
    sold: list[Partner] = field(default_factory=list)
    verdicts: dict[int, str] = field(default_factory=dict)

    def by_bid(self, partner: Partner) -> bool:
        """Whether `partner` buys the lead on its bid (and is posted, not queued)."""
        return partner.bids and str(partner.id) in self.bids

    def sell_all(self) -> tuple[Lead, Answer] | None:
        """Sell to the best partners in turn; the lead's end and its answer when the last sale
        recorded them. Raises Unsettled (what was sold stays in `sold`)."""
        lead, now = self.lead, self.now
        # A sale a post that died had reserved for its buyer's answer is given back, never
        # posted again: nobody knows what the buyer said.
        self.verdicts = abandon(self.stores, lead, self.token, self.timeline, now)
        # Every partner sold to counts, even one paused since.
        earlier = (self.stores.partners.by_id(int(p)) for p in lead.sold_to)
        self.sold = [p for p in earlier if p is not None]
        self.verdicts |= {p.id: "sold" for p in self.sold}
        self.timeline += [
            event(now, "sale", f"sold to partner {p.id} by an earlier post") for p in self.sold
        ]
        candidates = [p for p in self.outcome.ranked if p.id not in self.verdicts]
        recorded: tuple[Lead, Answer] | None = None
        for n, partner in enumerate(candidates):
            if len(self.sold) >= self.allowed:
                break
            last = len(self.sold) + 1 >= self.allowed or n == len(candidates) - 1
            why, ending = self.sell_one(partner, last=last)
            if why is None or why == sales.ALREADY:
                self.sold.append(partner)
                self.verdicts[partner.id] = "sold"
                self.timeline.append(self.sale(partner))
                recorded = ending if why is None else None
            elif why in (sales.LOST, sales.TIMES_SOLD):
                break
            else:
                self.verdicts[partner.id] = why
        return recorded

    def sale(self, partner: Partner) -> dict[str, Any]:
        return event(self.now, "sale", f"sold to partner {partner.id} at {money(partner.price)}")

    def sell_one(
        self, partner: Partner, *, last: bool
    ) -> tuple[str | None, tuple[Lead, Answer] | None]:
        """Sell to one partner: why not (None: sold), and the lead's end if the sale recorded it
        (`last`: if made, this sale is the post's last, so it records the lead's end with it;
        never a sale on a bid, which waits for its buyer)."""
        stores, lead, now = self.stores, self.lead, self.now
        if self.by_bid(partner):
            won = self.bids[str(partner.id)]
            limits = (self.allowed, self.ends)
            tallies = _sale_tallies(self.vendor, lead, partner, now, self.sold, None, self.full)
            why, said = sell_on_bid(
                stores, lead, self.token, partner, won, now, limits, self.consumer, tallies
            )
            self.timeline += said
            return why, None
        ending = None
        if last:
            ending = answering.ended(
                self.vendor,
                lead,
                self.values,
                self.outcome,
                [*self.sold, partner],
                self.verdicts | {partner.id: "sold"},
                [*self.timeline, self.sale(partner)],
                now,
            )
        tallies = _sale_tallies(self.vendor, lead, partner, now, self.sold, ending, self.full)
        why, ending = _sale(
            stores,
            lead,
            self.token,
            partner,
            now,
            self.allowed,
            self.consumer,
            ending,
            self.sold,
            tallies,
        )
        if why is None and not lead.test:
            count_sale(partner)
        if why not in (None, sales.ALREADY, sales.LOST, sales.TIMES_SOLD):
            why = f"{why} (at sale)"
        return why, ending


def _queue(
    stores: Stores, lead_id: int, sold: Sequence[Partner], bids: Mapping[str, object]
) -> None:
    """Queue every sale of the lead (again: a second message finds its sale delivered), but
    those made on a bid, which were posted: a lead that has only those leaves the outbox."""
    posted = {p.id for p in sold if p.bids and str(p.id) in bids}
    enqueue_sales(lead_id, [p.id for p in sold if p.id not in posted], stores)
    if sold and all(p.id in posted for p in sold):
        _leave_outbox(stores, lead_id)


def _leave_outbox(stores: Stores, lead_id: int) -> None:
    """A lead whose sales were all posted has nothing to queue: out of the outbox now."""
    try:
        stores.deliveries.clear_outbox(lead_id, [])
    except (ClientError, BotoCoreError):
        logger.exception("outbox not cleared; the sweep will do it")


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
        figures.vendor_day(vendor.id, now, sale + ended),
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
    return [figures.vendor_day(vendor.id, now, _ended_figures(lead, full))]


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
        )
    except (ClientError, BotoCoreError):
        again = reread(stores, lead.lead_id)
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

"""What the scheduled retry does: redrive dead letters with backoff, park the hopeless, sweep.

A delivery that failed maxReceiveCount times lands in the dead-letter queue. Each run moves it
back to the delivery queue, delayed redrive_base_seconds x 2^n (at most 15 minutes), until it
has come back max_redrives times; then its sale is marked failed on the lead (parked), the
DeliveryParked metric is emitted and the template's alarm fires. The outbox sweep re-queues
sales whose messages never reached the queue (the post's process died, or SQS refused them),
and ends posts that died holding their lead: a lead it sees posting with the same claim and
progress on two runs is recorded sold (with the sales it has), put back to await its post (a
pinged lead without sales), or recorded unsold (a full request without sales); a sale it
had reserved for a buyer's answer (pingpost.auction) is given back first, never posted again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from aws_lambda_powertools.metrics import MetricUnit

from pingpost.answers import MATCHED, UNMATCHED, Answer
from pingpost.clock import now_ms as _now_ms
from pingpost.config import settings
from pingpost.models import PINGED, POSTING, SOLD, UNSOLD
from pingpost.observability import logger, metrics
from pingpost.store.deliveries import QUEUED, RESERVED, SENDING
from pingpost.store.figures import Figures, Tally, partner_day
from pingpost.store.leads import Lead
from pingpost.store.queues import DeadLetter, Delivery
from pingpost.stores import STORES, Stores

MAX_DELAY_SECONDS = 900  # SQS's longest DelaySeconds


@dataclass
class Report:
    """What one run did."""

    redriven: int = 0
    parked: int = 0
    unreadable: int = 0
    swept: int = 0
    abandoned: int = 0  # posts that died holding their lead, ended by the sweep


def backoff(redrives: int) -> int:
    """Seconds before the (redrives+1)-th redrive is delivered again."""
    delay: int = settings().redrive_base_seconds * 2**redrives
    return min(MAX_DELAY_SECONDS, delay)


def redrive(report: Report, deadline: float, stores: Stores = STORES) -> None:
    """Move dead letters back to the queue, or park them after the last redrive."""
    while time.monotonic() < deadline:
        letters = stores.queues.dead_letters(10)
        if not letters:
            return
        for letter in letters:
            _settle(stores, letter, report)


def _settle(stores: Stores, letter: DeadLetter, report: Report) -> None:
    try:
        message = Delivery.parse(letter.body, letter.redrives)
    except (ValueError, KeyError, TypeError):
        # No sale can be read from it: nothing to deliver, but never drop it silently.
        logger.error("unreadable dead letter dropped", extra={"size": len(letter.body)})
        metrics.add_metric(name="DeadLetterUnreadable", unit=MetricUnit.Count, value=1)
        report.unreadable += 1
        stores.queues.forget(letter)
        return
    if message.redrives < settings().max_redrives:
        again = Delivery(message.lead_id, message.partner_id, message.redrives + 1)
        if stores.queues.enqueue([again], delay_seconds=backoff(message.redrives)):
            return  # SQS refused it: the dead letter stays for the next run
        report.redriven += 1
    else:
        detail = f"parked after {message.redrives + 1} rounds of delivery attempts"
        tallies = _parked(stores, message)
        if stores.deliveries.park(message.lead_id, message.partner_id, detail, _now_ms(), tallies):
            metrics.add_metric(name="DeliveryParked", unit=MetricUnit.Count, value=1)
            report.parked += 1
        else:
            record = stores.deliveries.state(message.lead_id, message.partner_id) or {}
            if record.get("state") == SENDING:
                # A worker is sending it right now: its outcome decides; if that fails too,
                # this letter (back after its visibility timeout) parks it on a later run.
                return
    stores.queues.forget(letter)


def _parked(stores: Stores, message: Delivery) -> list[Tally]:
    """What parking a sale adds to its partner's day: one parked, unless its lead is a test
    lead (read here: the message does not say) or is gone."""
    lead = stores.leads.get(message.lead_id)
    if lead is None or lead.test:
        return []
    return [partner_day(message.partner_id, datetime.now(UTC), Figures(parked=1))]


def sweep(report: Report, stores: Stores = STORES) -> None:
    """Queue the deliveries of leads left in the outbox longer than the grace period."""
    before = _now_ms() - settings().outbox_grace_seconds * 1000
    for lead_id in stores.deliveries.in_outbox(before):
        lead = stores.leads.get(lead_id)
        if lead is None:
            continue
        if lead.status == POSTING and not _ended(stores, lead, report):
            continue
        # The sales waiting for a message (leads sold before sales were tracked one by one:
        # every queued delivery).
        waiting = stores.deliveries.awaiting_queue(lead_id) or {
            int(partner)
            for partner, record in lead.deliveries.items()
            if record.get("state") == QUEUED
        }
        queued = [Delivery(lead_id, partner) for partner in sorted(waiting)]
        if queued and stores.queues.enqueue(queued):
            continue  # SQS still refuses: the lead stays in the outbox
        report.swept += len(queued)
        stores.deliveries.clear_outbox(lead_id, waiting)


def _ended(stores: Stores, lead: Lead, report: Report) -> bool:
    """End a post that died holding `lead` (seen with the same claim and progress on the last
    run too); True when it ended with sales to queue."""
    if lead.sweep_seen != f"{lead.claim}#{lead.beat}" or _posting(lead, _now_ms()):
        stores.leads.watch(lead)  # the next run decides
        return False
    released = _give_back(stores, lead)
    if released:
        again = stores.leads.get(lead.lead_id)
        if again is None or again.status != POSTING:
            return False
        lead = again
    now = _now_ms()
    allowed_sent = "Allowed_Times_Sold" in lead.data
    if lead.sold_to:
        status = SOLD
        told = Answer(MATCHED, lead.lead_id, matches=len(lead.sold_to) if allowed_sent else None)
        answer, detail = told.stored(), f"sold to {len(lead.sold_to)}; its post died"
    elif lead.answer:
        status, answer, detail = PINGED, lead.answer, "nothing sold; awaits its post again"
    else:
        status, answer = UNSOLD, Answer(UNMATCHED, lead.lead_id).stored()
        detail = "nothing sold; its request died"
    if released:
        detail += f"; {released} sale(s) reserved for a buyer's answer given back, not posted"
    event = {"at": now, "event": "sweep", "detail": f"post abandoned: {detail}"}
    if not stores.leads.abandon(lead, status, answer, event):
        return False  # the post made progress after all
    logger.warning("abandoned post ended", extra={"lead_id": lead.lead_id, "status": status})
    report.abandoned += 1
    return status == SOLD


def _give_back(stores: Stores, lead: Lead) -> int:
    """Release the sales a dead post reserved for its buyers' answers (caps, budget and dedupe
    given back; nobody knows what the buyer said, and it is never posted again); how many."""
    released = 0
    for partner_id, record in lead.deliveries.items():
        if record.get("state") != RESERVED or lead.claim is None:
            continue
        why = "abandoned: its post died; not posted again"
        if stores.sales.release(lead.lead_id, lead.claim, int(partner_id), record, why=why):
            logger.warning("reserved sale abandoned", extra={"lead_id": lead.lead_id})
            released += 1
    return released


def _posting(lead: Lead, now_ms: int) -> bool:
    """Whether the lead's post may still be posting to a buyer (a reservation not yet due)."""
    return any(
        r.get("state") == RESERVED and int(r.get("until", 0)) > now_ms
        for r in lead.deliveries.values()
    )


def run(budget_seconds: float = 100, stores: Stores = STORES) -> Report:
    """One scheduled run: the outbox sweep, then the dead letters, within the time budget."""
    report = Report()
    deadline = time.monotonic() + budget_seconds
    sweep(report, stores)
    redrive(report, deadline, stores)
    logger.info("retry run", extra=report.__dict__)
    return report

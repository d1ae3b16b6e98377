"""ping, post and full: the lead's life from the publisher's request to its sales.

Every read and write goes through the `Stores` given (by default the real ones), so that each
path runs in unit tests without AWS; what a request is told is computed in
`pingpost.answering`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pingpost import answering, consent
from pingpost.answering import event, ms, restored, stored, wire
from pingpost.answers import Answer
from pingpost.clock import now_ms as _now_ms
from pingpost.config import settings
from pingpost.decoding import Request
from pingpost.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    LeadNotFound,
    TooManyRequests,
    Unauthorized,
)
from pingpost.fields import LEAD_ID, MODES
from pingpost.identity import HashedValue
from pingpost.matching import Criteria, Outcome, PartnerSet, match
from pingpost.models import DONE, PINGED, POSTING, SOLD, Partner, Vendor
from pingpost.observability import logger
from pingpost.store import sales
from pingpost.store.deliveries import outbox_shard
from pingpost.store.leads import Lead, Repeated, kept_until
from pingpost.store.partners import Roster
from pingpost.store.queues import Delivery
from pingpost.stores import STORES, Stores
from pingpost.validation import extras, present, validate

_WAIT_STEP = 0.05
# Fields whose change between ping and post changes which partners match.
_MATCHED_ON = ("State", "Zip", "Home_Improvement_Product", "Score", "SRC")


def submit(
    request: Request,
    path_mode: str | None = None,
    vendor: Vendor | None = None,
    idempotency_key: str | None = None,
    stores: Stores = STORES,
) -> Answer:
    """Handle one pingPostLead request; `path_mode` is the mode its route implies, if any.

    `vendor`: the request's vendor when the caller has already found it by the Key.
    `idempotency_key`: the request's Idempotency-Key header (full requests honour it).
    """
    fields = present(request.fields)
    vendor = vendor or authenticate(fields.get("Key"), stores)
    if request.problems:
        raise InvalidRequest(list(request.problems))
    mode = _mode(fields, path_mode)
    values = validate(fields, mode, dynamic_pricing=vendor.dynamic_pricing)
    kept = extras(request.fields)
    if mode == "ping":
        return ping(vendor, values, kept, request.matches, stores)
    if mode == "post":
        return post(vendor, values, kept, request.matches, request.selected, stores)
    return full(vendor, values, kept, request.matches, idempotency_key, stores)


def _mode(fields: dict[str, str], path_mode: str | None) -> str:
    sent = fields.get("Mode")
    if path_mode is None:
        if sent is None:
            raise InvalidRequest(["Required value Mode is missing"])
        if sent.casefold() not in MODES:
            raise InvalidRequest([f"Invalid value for Mode: must be one of: {', '.join(MODES)}"])
        return sent.casefold()
    if sent is not None and sent.casefold() != path_mode:
        raise InvalidRequest(
            [
                f"Invalid value for Mode: this is the /{path_mode} endpoint; send Mode={path_mode}"
                " or leave Mode out"
            ]
        )
    fields["Mode"] = path_mode
    return path_mode


def authenticate(key: str | None, stores: Stores = STORES) -> Vendor:
    """The active vendor whose Key this is; Unauthorized or Forbidden otherwise."""
    if key is None:
        raise Unauthorized("Required value Key is missing")
    vendor = stores.vendors.by_key(key)
    if vendor is None:
        raise Unauthorized("Invalid Key")
    if not vendor.active:
        raise Forbidden("This Key's vendor account is disabled")
    if vendor.rate_limit and not stores.counters.take(vendor.id, vendor.rate_limit):
        raise TooManyRequests(
            f"This Key is over its limit of {vendor.rate_limit} requests a second; retry shortly"
        )
    return vendor


def _match(stores: Stores, lead: Criteria, now: datetime, roster: Roster | None = None) -> Outcome:
    return match(lead, _indexed(roster or stores.partners.current()), now, stores.sales.usage)


# A roster is the same object until the partners change (and hashes by identity).
@lru_cache(maxsize=1)
def _indexed(roster: Roster) -> PartnerSet:
    """The active partners of the container's copy, indexed for matching once per copy."""
    return PartnerSet(p for p in roster.partners.values() if p.active)


def ping(
    vendor: Vendor,
    values: dict[str, object],
    kept: dict[str, str],
    matches: Sequence[HashedValue] = (),
    stores: Stores = STORES,
) -> Answer:
    """Match a partial lead, store it to await its post, and say whether it can be sold."""
    data = wire(values)
    answering.check_fits(data, kept, matches)
    now = datetime.now(UTC)
    cost = answering.cost(values, vendor)
    evidence = consent.record(values, ms(now))
    criteria = Criteria.of(
        values, cost, vendor_matches=tuple(matches), consent=consent.given(evidence)
    )
    outcome = _match(stores, criteria, now)
    lead_id = stores.lead_ids.next()
    answer = answering.answer(vendor, lead_id, values, outcome.ranked, cost)
    summary = f"{len(outcome.ranked)} of {len(outcome.decisions)} partners considered matched"
    stores.leads.add(
        Lead(
            lead_id=lead_id,
            vendor_id=vendor.id,
            status=PINGED,
            data=data,
            cost=cost,
            created_at=ms(now),
            answer=answer.stored(),
            extra=kept,
            matches=stored(matches),
            decisions=answering.decisions(outcome),
            timeline=[event(now, "ping", f"{answer.status}: {summary}")],
            test=values.get("Test_Lead") is True,
            consent=evidence,
            expires_at=int(now.timestamp()) + settings().ping_ttl_hours * 3600,
        )
    )
    return answer


def full(
    vendor: Vendor,
    values: dict[str, object],
    kept: dict[str, str],
    matches: Sequence[HashedValue] = (),
    idempotency_key: str | None = None,
    stores: Stores = STORES,
) -> Answer:
    """Ping and post in one request: match the whole lead and sell it.

    A repeat of an earlier full request (see `answering.repeat`) is the earlier lead, not a
    new one.
    """
    data = wire(values)
    answering.check_fits(data, kept, matches)
    now = datetime.now(UTC)
    repeat = answering.repeat(vendor, values, kept, matches, idempotency_key, now)
    token = uuid.uuid4().hex
    lead_id = stores.lead_ids.next()
    lead = Lead(
        lead_id=lead_id,
        vendor_id=vendor.id,
        status=POSTING,
        data=data,
        cost=answering.cost(values, vendor),
        created_at=ms(now),
        answer={},
        extra=kept,
        matches=stored(matches),
        test=values.get("Test_Lead") is True,
        consent=consent.record(values, ms(now)),
        claim=token,
        claimed_at=ms(now),
        outbox=outbox_shard(lead_id),  # the sweep watches it until it is recorded
        outbox_since=ms(now),
        expires_at=kept_until(int(now.timestamp())),
    )
    agreed = consent.given(lead.consent) is True
    criteria = Criteria.of(values, lead.cost, vendor_matches=tuple(matches), consent=agreed)
    try:
        stores.leads.add(lead, repeat)
    except Repeated as earlier:
        if earlier.request != repeat.request:
            raise InvalidRequest(
                [
                    "Invalid Idempotency-Key header: it was sent before with a different lead;"
                    " send a new key for a new lead"
                ]
            ) from None
        return _repeated(stores, earlier.lead_id, vendor, values, criteria)
    timeline = [event(now, "full", "received")]
    return _sell(stores, vendor, lead, token, values, criteria, now, timeline)


def _repeated(
    stores: Stores, lead_id: int, vendor: Vendor, values: Mapping[str, object], criteria: Criteria
) -> Answer:
    """The answer to a repeated full request: the earlier lead's, once it is recorded.

    When the earlier request died holding the lead (it made no progress while watched), this
    one takes the lead over and sells it, from the sales already recorded on it.
    """
    lead = _owned(stores, lead_id, vendor)
    token = uuid.uuid4().hex
    if lead.unanswered:
        claimed = stores.leads.claim(lead_id, vendor.id, token, _now_ms(), reopen=True)
        story = "the earlier request died before selling anything; this one sells the lead"
    else:
        if lead.status in DONE:
            return Answer.restored(lead.answer)
        watched = _watch(stores, lead, vendor)
        if isinstance(watched, Answer):
            return watched
        claimed = None
        if watched is not None:
            claimed = stores.leads.claim(lead_id, vendor.id, token, _now_ms(), seen=watched)
        story = "the earlier request died; this one sells the lead"
    if not claimed:
        return _outcome(stores, lead_id, vendor)
    lead.sold_to = claimed.sold_to
    now = datetime.now(UTC)
    timeline = [event(now, "full", f"repeated: {story}")]
    return _sell(stores, vendor, lead, token, values, criteria, now, timeline)


def _sell(
    stores: Stores,
    vendor: Vendor,
    lead: Lead,
    token: str,
    values: Mapping[str, object],
    criteria: Criteria,
    now: datetime,
    timeline: list[dict[str, Any]],
) -> Answer:
    """Sell a lead this request holds to the best partners that will take it, then record it.

    Sales an earlier post of the lead recorded stand and count; once a sale is recorded the
    answer says Matched, whatever fails after it (the outbox and the sweep finish the rest).
    """
    roster = stores.partners.current()
    outcome = _match(stores, criteria, now, roster)
    allowed = answering.allowed(values, vendor)
    consumer = {
        k: str(values[f]) for k, f in (("email", "Email"), ("phone", "Home_Phone")) if f in values
    }
    # Every partner sold to counts, even one paused since.
    sold = [roster.partners[int(p)] for p in lead.sold_to if int(p) in roster.partners]
    verdicts = {p.id: "sold" for p in sold}
    timeline += [event(now, "sale", f"sold to partner {p.id} by an earlier post") for p in sold]
    candidates = [p for p in outcome.ranked if p.id not in verdicts]
    # The lead as it ends and its answer, once this post's last sale wrote them with the sale.
    recorded: tuple[Lead, Answer] | None = None
    for n, partner in enumerate(candidates):
        if len(sold) >= allowed:
            break
        sale = event(now, "sale", f"sold to partner {partner.id} at {partner.price}")
        ending = None
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
        why, ending = _sale(stores, lead, token, partner, now, allowed, consumer, ending, sold)
        if why is None or why == sales.ALREADY:
            sold.append(partner)
            verdicts[partner.id] = "sold"
            timeline.append(sale)
            recorded = ending if why is None else None
        elif why in (sales.LOST, sales.TIMES_SOLD):
            break
        else:
            verdicts[partner.id] = f"{why} (at sale)"
    if recorded is not None:
        finished, answer = True, recorded[1]
    else:
        done, answer = answering.ended(vendor, lead, values, outcome, sold, verdicts, timeline, now)
        finished = _finish(stores, done, token)
    # Every sale of the lead is queued (again): a second message finds its sale delivered.
    enqueue_sales(lead.lead_id, [p.id for p in sold], stores)
    if not finished:
        # Our claim went stale and another post took the lead over: its outcome stands.
        return _outcome(stores, lead.lead_id, vendor)
    return answer


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


def _finish(stores: Stores, lead: Lead, token: str) -> bool:
    """Record the post's outcome (when its last sale did not); False when the claim was lost.
    Once a sale is recorded the answer stands, whatever fails here."""
    try:
        return stores.leads.finish(lead, token)
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


def _owned(stores: Stores, lead_id: int, vendor: Vendor) -> Lead:
    lead = stores.leads.get(lead_id)
    now = _now_ms()
    if (
        lead is None
        or lead.vendor_id != vendor.id  # another vendor's lead is as good as unknown
        or (lead.status == PINGED and lead.expires_at is not None and lead.expires_at < now // 1000)
    ):
        raise LeadNotFound(f"Lead_ID {lead_id} was not found or has expired")
    return lead


def post(
    vendor: Vendor,
    values: dict[str, object],
    kept: dict[str, str],
    matches: Sequence[HashedValue] = (),
    selected: Sequence[HashedValue] = (),
    stores: Stores = STORES,
) -> Answer:
    """Sell a pinged lead with its full data; a repeated post is told what the first was."""
    lead_id = values[LEAD_ID]
    assert isinstance(lead_id, int)  # validated as a count
    lead = _owned(stores, lead_id, vendor)
    sent_test = values.get("Test_Lead")
    if isinstance(sent_test, bool) and sent_test != lead.test:
        # Otherwise a test ping (no caps, no dedupe) could be sold to real partners.
        kind = "a test lead" if lead.test else "real"
        raise InvalidRequest(
            [f"Invalid value for Test_Lead: its ping made Lead_ID {lead_id} {kind}; posts keep it"]
        )
    if lead.status in DONE:
        return Answer.restored(lead.answer)
    seen: tuple[str, int] | None = None
    if lead.status == POSTING:
        watched = _watch(stores, lead, vendor)
        if isinstance(watched, Answer):
            return watched
        seen = watched
    merged = answering.merged(lead, values)
    answering.check_selected(lead, selected)
    now = datetime.now(UTC)
    timeline = [event(now, "post", "received")]
    changed = [f for f in _MATCHED_ON if lead.data.get(f) != wire(merged).get(f)]
    if changed:
        timeline.append(
            event(now, "rematch", f"the post changed {', '.join(changed)}: matched again")
        )
    lead.data = wire(merged)
    # A post that takes over finds the earlier post's Matches recorded: each is kept once.
    lead.matches = stored(tuple(dict.fromkeys((*restored(lead.matches), *matches))))
    lead.extra = lead.extra | kept
    answering.check_fits(lead.data, lead.extra, restored(lead.matches))
    lead.consent = consent.record(merged, ms(now), earlier=lead.consent)
    token = uuid.uuid4().hex
    # The post's data is recorded with the claim: the sales are delivered with it, whatever
    # fails after them.
    claimed = stores.leads.claim(lead_id, vendor.id, token, _now_ms(), seen=seen, posted=lead)
    if claimed is None:
        return _outcome(stores, lead_id, vendor)
    # A post that took the lead over continues from the sales recorded on it until now.
    lead.sold_to = claimed.sold_to
    criteria = Criteria.of(
        merged,
        lead.cost,
        vendor_matches=restored(lead.matches),
        selected=tuple(selected),
        consent=consent.given(lead.consent) is True,
    )
    return _sell(stores, vendor, lead, token, merged, criteria, now, timeline)


def _watch(stores: Stores, lead: Lead, vendor: Vendor) -> Answer | tuple[str, int] | None:
    """Wait for another post of the lead: its answer when it finishes; the (claim, beat) it
    held when it made no progress while watched (it is presumed dead: take it over); None when
    the lead is waiting for a post again. Conflict when it progresses without finishing."""
    first = (lead.claim or "", lead.beat)
    deadline = time.monotonic() + settings().post_wait_seconds
    while time.monotonic() < deadline:
        time.sleep(_WAIT_STEP)
        lead = _owned(stores, lead.lead_id, vendor)
        if lead.status in DONE:
            return Answer.restored(lead.answer)
        if lead.status != POSTING:
            return None
    if (lead.claim or "", lead.beat) == first:
        return first
    raise Conflict(f"Lead_ID {lead.lead_id} is being posted by another request; retry shortly")


def _outcome(stores: Stores, lead_id: int, vendor: Vendor) -> Answer:
    """The answer a finished post gave, waiting a little for one that is under way."""
    deadline = time.monotonic() + settings().post_wait_seconds
    while True:
        lead = _owned(stores, lead_id, vendor)
        if lead.status in DONE:
            return Answer.restored(lead.answer)
        if time.monotonic() >= deadline:
            raise Conflict(f"Lead_ID {lead_id} is being posted by another request; retry shortly")
        time.sleep(_WAIT_STEP)


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

"""ping, post and full: the lead's life from the publisher's request to its sales.

Every read and write goes through the `Stores` given (by default the real ones), so that each
path runs in unit tests without AWS; what a request is told is computed in
`pingpost.answering`, and a lead the request holds is sold by `pingpost.selling` (which a ping
never needs: the post, full and API functions load it at init, the ping function never does).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pingpost import answering, auction, consent
from pingpost.answering import event, ms, restored, stored, wire
from pingpost.answers import MATCHED, Answer
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
from pingpost.fields import LEAD_ID, MODES, TYPE, table
from pingpost.identity import HashedValue
from pingpost.matching import Criteria
from pingpost.models import DONE, PINGED, POSTING, Vendor
from pingpost.reasons import BID
from pingpost.store.deliveries import RESERVED, outbox_shard
from pingpost.store.figures import Figures, vendor_day
from pingpost.store.leads import Lead, Repeated, kept_until
from pingpost.stores import STORES, Stores, match_lead
from pingpost.validation import extras, parse, present, validate

_WAIT_STEP = 0.05


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
    answering.check_may_send(vendor, fields.get(TYPE))
    try:
        values = validate(fields, mode, dynamic_pricing=vendor.dynamic_pricing)
    except InvalidRequest:
        if mode == "post":  # a post of another type than its ping: say that, not its fields
            _same_type(fields, vendor, stores)
        raise
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


def _same_type(fields: Mapping[str, str], vendor: Vendor, stores: Stores) -> None:
    """A refused post's TYPE against its lead's, when the Lead_ID names one of the vendor's."""
    try:  # the Lead_ID as validation reads it
        lead_id = parse({LEAD_ID: fields[LEAD_ID]})[LEAD_ID]
    except (KeyError, InvalidRequest):
        return
    assert isinstance(lead_id, int)
    lead = stores.leads.get(lead_id)
    if lead is not None and lead.vendor_id == vendor.id:
        answering.check_type(lead, fields.get(TYPE))


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
    test = values.get("Test_Lead") is True
    matched = match_lead(stores, criteria, now)
    asked = auction.ask(matched.ranked, data, test=test, seconds=vendor.bid_timeout, stores=stores)
    outcome = auction.priced(matched, asked, cost)
    lead_id = stores.lead_ids.next()
    answer = answering.answer(vendor, lead_id, values, outcome.ranked, cost)
    summary = f"{len(outcome.ranked)} of {len(outcome.decisions)} partners considered matched"
    timeline = [*_auction_events(now, asked), event(now, "ping", f"{answer.status}: {summary}")]
    # The vendor's day counts the ping with the lead, in one write (test leads are not counted).
    counted = Figures(pings=1, matched=int(answer.status == MATCHED))
    day = [
        vendor_day(vendor.id, now, counted),
        *auction.tallies(vendor.id, now, asked),
    ]
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
            timeline=timeline,
            test=test,
            consent=evidence,
            expires_at=int(now.timestamp()) + settings().ping_ttl_hours * 3600,
            bids=asked,
        ),
        tallies=[] if test else day,
    )
    return answer


def _auction_events(now: datetime, asked: Mapping[str, Mapping[str, object]]) -> list[Any]:
    """The timeline's account of an auction, if there was one."""
    if not asked:
        return []
    made = sum(1 for record in asked.values() if record["outcome"] == BID)
    slowest = max(int(str(record.get("ms", 0))) for record in asked.values())
    return [event(now, "auction", f"{len(asked)} asked, {made} bid, in {slowest} ms")]


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
    from pingpost.selling import sell

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
    matched = match_lead(stores, criteria, now)
    # The buyers that bid are asked before the lead's first write, which keeps their answers.
    lead.bids = auction.ask(
        matched.ranked, data, test=lead.test, seconds=vendor.bid_timeout, stores=stores
    )
    # Its auction is counted with that write, whatever becomes of the post.
    counted = [] if lead.test else auction.tallies(vendor.id, now, lead.bids)
    try:
        stores.leads.add(lead, repeat, tallies=counted)
    except Repeated as earlier:
        if earlier.request != repeat.request:
            raise InvalidRequest(
                [
                    "Invalid Idempotency-Key header: it was sent before with a different lead;"
                    " send a new key for a new lead"
                ]
            ) from None
        return _repeated(stores, earlier.lead_id, vendor, values, criteria)
    timeline = [*_auction_events(now, lead.bids), event(now, "full", "received")]
    answer = sell(
        stores,
        vendor,
        lead,
        token,
        values,
        criteria,
        now,
        timeline,
        full=True,
        matched=matched,
    )
    return answer if answer is not None else _outcome(stores, lead.lead_id, vendor)


def _repeated(
    stores: Stores, lead_id: int, vendor: Vendor, values: Mapping[str, object], criteria: Criteria
) -> Answer:
    """The answer to a repeated full request: the earlier lead's, once it is recorded.

    When the earlier request died holding the lead (it made no progress while watched), this
    one takes the lead over and sells it, from the sales already recorded on it.
    """
    from pingpost.selling import sell

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
    lead.sold_to, lead.deliveries = claimed.sold_to, claimed.deliveries
    now = datetime.now(UTC)
    timeline = [event(now, "full", f"repeated: {story}")]
    answer = sell(stores, vendor, lead, token, values, criteria, now, timeline, full=True)
    return answer if answer is not None else _outcome(stores, lead_id, vendor)


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
    from pingpost.selling import sell

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
    answering.check_type(lead, values.get(TYPE))
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
    changed = [f for f in table(merged).matched_on if lead.data.get(f) != wire(merged).get(f)]
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
    lead.sold_to, lead.deliveries = claimed.sold_to, claimed.deliveries
    criteria = Criteria.of(
        merged,
        lead.cost,
        vendor_matches=restored(lead.matches),
        selected=tuple(selected),
        consent=consent.given(lead.consent) is True,
    )
    answer = sell(stores, vendor, lead, token, merged, criteria, now, timeline, rematched=changed)
    return answer if answer is not None else _outcome(stores, lead_id, vendor)


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
    if (lead.claim or "", lead.beat) == first and not _posting_to_buyer(lead):
        return first
    raise Conflict(f"Lead_ID {lead.lead_id} is being posted by another request; retry shortly")


def _posting_to_buyer(lead: Lead) -> bool:
    """Whether the lead's post may still be waiting on a buyer's answer (a reservation of its
    whose time is not up): alive, however long it has made no other progress."""
    now = _now_ms()
    return any(
        record.get("state") == RESERVED and int(record.get("until", 0)) > now
        for record in lead.deliveries.values()
    )


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

"""ping, post and full: the lead's life from the publisher's request to its sales."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pingpost import consent
from pingpost.answers import MATCHED, UNMATCHED, Answer, Contact, Hash
from pingpost.clock import now_ms as _now_ms
from pingpost.config import settings
from pingpost.decoding import Request
from pingpost.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    LeadNotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
)
from pingpost.fields import LEAD_ID, MAX_LEAD_BYTES, MODES
from pingpost.identity import HashedValue, partner_hash
from pingpost.matching import Criteria, Outcome, PartnerSet, match
from pingpost.models import Partner, Vendor
from pingpost.observability import logger
from pingpost.store import counters, deliveries, leads, partners, queues, sales, vendors
from pingpost.store.counters import LeadIds, lead_ids
from pingpost.store.deliveries import outbox_shard
from pingpost.store.leads import DONE, PINGED, POSTING, SOLD, UNSOLD, Lead
from pingpost.store.queues import Delivery
from pingpost.validation import cross_check, extras, parse, present, validate

# Fields that are about one request, never part of the lead itself. The Key is a secret.
_NOT_KEPT = frozenset({"Key", "API_Action", "Mode", LEAD_ID})
_WAIT_STEP = 0.05
# Fields whose change between ping and post changes which partners match.
_MATCHED_ON = ("State", "Zip", "Home_Improvement_Product", "Score", "SRC")
_CENT = Decimal("0.01")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def submit(
    request: Request,
    path_mode: str | None = None,
    vendor: Vendor | None = None,
    idempotency_key: str | None = None,
) -> Answer:
    """Handle one pingPostLead request; `path_mode` is the mode its route implies, if any.

    `vendor`: the request's vendor when the caller has already found it by the Key.
    `idempotency_key`: the request's Idempotency-Key header (full requests honour it).
    """
    fields = present(request.fields)
    vendor = vendor or authenticate(fields.get("Key"))
    if request.problems:
        raise InvalidRequest(list(request.problems))
    mode = _mode(fields, path_mode)
    values = validate(fields, mode, dynamic_pricing=vendor.dynamic_pricing)
    kept = extras(request.fields)
    if mode == "ping":
        return ping(vendor, values, kept, request.matches)
    if mode == "post":
        return post(vendor, values, kept, request.matches, request.selected)
    return full(vendor, values, kept, request.matches, idempotency_key=idempotency_key)


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


def authenticate(key: str | None) -> Vendor:
    """The active vendor whose Key this is; Unauthorized or Forbidden otherwise."""
    if key is None:
        raise Unauthorized("Required value Key is missing")
    vendor = vendors.by_key(key)
    if vendor is None:
        raise Unauthorized("Invalid Key")
    if not vendor.active:
        raise Forbidden("This Key's vendor account is disabled")
    if vendor.rate_limit and not counters.take(vendor.id, vendor.rate_limit):
        raise TooManyRequests(
            f"This Key is over its limit of {vendor.rate_limit} requests a second; retry shortly"
        )
    return vendor


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _wire(values: Mapping[str, object]) -> dict[str, str]:
    """Values in the text form they arrive in, to store and to parse again on post."""
    out = {}
    for name, value in values.items():
        if name in _NOT_KEPT:
            continue
        if isinstance(value, bool):
            out[name] = "1" if value else "0"
        elif isinstance(value, tuple):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = str(value)
    return out


def _allowed(values: Mapping[str, object], vendor: Vendor) -> int:
    sent = values.get("Allowed_Times_Sold")
    return sent if isinstance(sent, int) else vendor.allowed_times_sold


def _net(vendor: Vendor, price: Decimal) -> Decimal:
    """What the vendor gets of one sale at `price`, after the exchange's margin."""
    if vendor.margin_type == "percent":
        net = price * (100 - vendor.margin) / 100
    else:
        net = price - vendor.margin
    return max(net, Decimal(0)).quantize(_CENT, rounding=ROUND_HALF_UP)


def _price(vendor: Vendor, ranked: Sequence[Partner], cost: Decimal, allowed: int) -> Decimal:
    """The best price the lead can be accepted at (see the README: Return_Best_Price).

    On dynamic pricing: the sum, over the partners it would be sold to (at most
    Allowed_Times_Sold, best first), of each price net of the vendor's margin.
    Otherwise: the vendor's lead cost.
    """
    if not vendor.dynamic_pricing:
        return cost
    return sum((_net(vendor, p.price) for p in ranked[:allowed]), Decimal(0))


def _answer(
    vendor: Vendor,
    lead_id: int,
    values: Mapping[str, object],
    ranked: Sequence[Partner],
    cost: Decimal,
    *,
    sold: Sequence[Partner] | None = None,
) -> Answer:
    """What a request is told: matched or not, and what it asked to be told besides.

    `sold`: the partners a post sold the lead to (None on ping: how many would buy it).
    """
    allowed = _allowed(values, vendor)
    count = min(len(ranked), allowed) if sold is None else len(sold)
    hashes: tuple[Hash, ...] = ()
    hash_type, value_type = values.get("Return_Hash_Type"), values.get("Return_Hash_Value_Type")
    if isinstance(hash_type, str) and isinstance(value_type, str):
        hashes = tuple(
            Hash(value_type, hash_type, h)
            for p in ranked
            if (h := partner_hash(p, value_type, hash_type)) is not None
        )
    return Answer(
        status=MATCHED if count else UNMATCHED,
        lead_id=lead_id,
        price=_price(vendor, ranked, cost, allowed) if values.get("Return_Best_Price") else None,
        matches=count if "Allowed_Times_Sold" in values else None,
        hashes=hashes,
        partners=tuple(_contact(p) for p in sold or ()),
    )


def _contact(partner: Partner) -> Contact:
    """What `partner` lets vendors of the full response style see of it."""
    shown = {f.name: getattr(partner, f.name) for f in fields(Contact) if f.name in partner.public}
    return Contact(**shown)


def _cost(values: Mapping[str, object], vendor: Vendor) -> Decimal:
    cost = values.get("Cost")
    return cost if isinstance(cost, Decimal) else vendor.cost


def _stored(values: Sequence[HashedValue]) -> list[dict[str, str]]:
    return [
        {"value_type": v.value_type, "hash_type": v.hash_type, "value": v.value} for v in values
    ]


def _restored(values: Sequence[Mapping[str, str]]) -> tuple[HashedValue, ...]:
    return tuple(HashedValue(v["value_type"], v["hash_type"], v["value"]) for v in values)


def _fits(
    data: Mapping[str, str], extra: Mapping[str, str], matches: Sequence[HashedValue]
) -> None:
    """Refuse a lead too large to store with its answer (checked before anything is sold)."""
    texts = [*data.items(), *extra.items(), *((m.value_type, m.value) for m in matches)]
    size = sum(len(name.encode()) + len(value.encode()) for name, value in texts)
    if size > MAX_LEAD_BYTES:
        raise PayloadTooLarge(
            f"The lead is {size // 1024} KB (fields, extra fields and Matches), over the"
            f" {MAX_LEAD_BYTES // 1024} KB a lead may hold: send shorter or fewer extra fields"
        )


def _event(at: datetime, event: str, detail: str) -> dict[str, Any]:
    return {"at": int(at.timestamp() * 1000), "event": event, "detail": detail}


def _decisions(outcome: Outcome, verdicts: Mapping[int, str] | None = None) -> list[list[Any]]:
    """Per partner considered: "sold", "matched", or the rule that excluded it."""
    verdicts = verdicts or {}
    return [
        [d.partner_id, verdicts.get(d.partner_id) or d.reason or "matched"]
        for d in outcome.decisions
    ]


def _match(lead: Criteria, now: datetime, roster: partners.Roster | None = None) -> Outcome:
    return match(lead, _indexed(roster or partners.current()), now, sales.usage)


# A roster is the same object until the partners change (and hashes by identity).
@lru_cache(maxsize=1)
def _indexed(roster: partners.Roster) -> PartnerSet:
    """The active partners of the container's copy, indexed for matching once per copy."""
    return PartnerSet(p for p in roster.partners.values() if p.active)


def ping(
    vendor: Vendor,
    values: dict[str, object],
    kept: dict[str, str],
    matches: Sequence[HashedValue] = (),
    ids: LeadIds = lead_ids,
) -> Answer:
    """Match a partial lead, store it to await its post, and say whether it can be sold."""
    data = _wire(values)
    _fits(data, kept, matches)
    now = datetime.now(UTC)
    cost = _cost(values, vendor)
    evidence = consent.record(values, _ms(now))
    criteria = Criteria.of(
        values, cost, vendor_matches=tuple(matches), consent=consent.given(evidence)
    )
    outcome = _match(criteria, now)
    lead_id = ids.next()
    answer = _answer(vendor, lead_id, values, outcome.ranked, cost)
    summary = f"{len(outcome.ranked)} of {len(outcome.decisions)} partners considered matched"
    leads.add(
        Lead(
            lead_id=lead_id,
            vendor_id=vendor.id,
            status=PINGED,
            data=data,
            cost=cost,
            created_at=int(now.timestamp() * 1000),
            answer=answer.stored(),
            extra=kept,
            matches=_stored(matches),
            decisions=_decisions(outcome),
            timeline=[_event(now, "ping", f"{answer.status}: {summary}")],
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
    ids: LeadIds = lead_ids,
    idempotency_key: str | None = None,
) -> Answer:
    """Ping and post in one request: match the whole lead and sell it.

    A repeat of an earlier full request (see `_repeat`) is the earlier lead, not a new one.
    """
    data = _wire(values)
    _fits(data, kept, matches)
    now = datetime.now(UTC)
    repeat = _repeat(vendor, values, kept, matches, idempotency_key, now)
    token = uuid.uuid4().hex
    lead_id = ids.next()
    lead = Lead(
        lead_id=lead_id,
        vendor_id=vendor.id,
        status=POSTING,
        data=data,
        cost=_cost(values, vendor),
        created_at=int(now.timestamp() * 1000),
        answer={},
        extra=kept,
        matches=_stored(matches),
        test=values.get("Test_Lead") is True,
        consent=consent.record(values, _ms(now)),
        claim=token,
        claimed_at=int(now.timestamp() * 1000),
        outbox=outbox_shard(lead_id),  # the sweep watches it until it is recorded
        outbox_since=int(now.timestamp() * 1000),
        expires_at=leads.kept_until(int(now.timestamp())),
    )
    agreed = consent.given(lead.consent) is True
    criteria = Criteria.of(values, lead.cost, vendor_matches=tuple(matches), consent=agreed)
    try:
        leads.add(lead, repeat)
    except leads.Repeated as earlier:
        if earlier.request != repeat.request:
            raise InvalidRequest(
                [
                    "Invalid Idempotency-Key header: it was sent before with a different lead;"
                    " send a new key for a new lead"
                ]
            ) from None
        return _repeated(earlier.lead_id, vendor, values, criteria)
    return _sell(vendor, lead, token, values, criteria, now, [_event(now, "full", "received")])


def _repeat(
    vendor: Vendor,
    values: Mapping[str, object],
    kept: Mapping[str, str],
    matches: Sequence[HashedValue],
    idempotency_key: str | None,
    now: datetime,
) -> leads.Repeat:
    """When a full request is the repeat of an earlier one (a publisher retrying).

    The same vendor sending the same Idempotency-Key header, or, without one, the same
    request (every field and value, extra fields and Matches included), within
    `repeat_seconds` of the first.
    """
    digest = hashlib.sha256(
        json.dumps([vendor.id, _wire(values), kept, _stored(matches)], sort_keys=True).encode()
    ).hexdigest()
    name = digest
    if idempotency_key is not None:
        if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise InvalidRequest(
                [
                    "Invalid Idempotency-Key header: must be 1 to 255 visible ASCII characters,"
                    " no spaces"
                ]
            )
        name = "key#" + hashlib.sha256(idempotency_key.encode()).hexdigest()
    expires = int(now.timestamp()) + settings().repeat_seconds
    return leads.Repeat(f"full#{vendor.id}#{name}", digest, expires)


def _repeated(
    lead_id: int, vendor: Vendor, values: Mapping[str, object], criteria: Criteria
) -> Answer:
    """The answer to a repeated full request: the earlier lead's, once it is recorded.

    When the earlier request died holding the lead (it made no progress while watched), this
    one takes the lead over and sells it, from the sales already recorded on it.
    """
    lead = _owned(lead_id, vendor)
    token = uuid.uuid4().hex
    if lead.unanswered:
        claimed = leads.claim(lead_id, vendor.id, token, _now_ms(), reopen=True)
        story = "the earlier request died before selling anything; this one sells the lead"
    else:
        if lead.status in DONE:
            return Answer.restored(lead.answer)
        watched = _watch(lead, vendor)
        if isinstance(watched, Answer):
            return watched
        claimed = None
        if watched is not None:
            claimed = leads.claim(lead_id, vendor.id, token, _now_ms(), seen=watched)
        story = "the earlier request died; this one sells the lead"
    if not claimed:
        return _outcome(lead_id, vendor)
    lead.sold_to = claimed.sold_to
    now = datetime.now(UTC)
    timeline = [_event(now, "full", f"repeated: {story}")]
    return _sell(vendor, lead, token, values, criteria, now, timeline)


def _sell(
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
    roster = partners.current()
    outcome = _match(criteria, now, roster)
    allowed = _allowed(values, vendor)
    consumer = {
        k: str(values[f]) for k, f in (("email", "Email"), ("phone", "Home_Phone")) if f in values
    }
    # Every partner sold to counts, even one paused since.
    sold = [roster.partners[int(p)] for p in lead.sold_to if int(p) in roster.partners]
    verdicts = {p.id: "sold" for p in sold}
    timeline += [_event(now, "sale", f"sold to partner {p.id} by an earlier post") for p in sold]
    candidates = [p for p in outcome.ranked if p.id not in verdicts]
    recorded = False  # the post's outcome, written with its last sale
    for n, partner in enumerate(candidates):
        if len(sold) >= allowed:
            break
        sale = _event(now, "sale", f"sold to partner {partner.id} at {partner.price}")
        ending = None
        if len(sold) + 1 >= allowed or n == len(candidates) - 1:
            # If this sale is made it is the last: the lead as it then ends goes with it.
            ending, _ = _ended(
                vendor,
                lead,
                values,
                outcome,
                [*sold, partner],
                verdicts | {partner.id: "sold"},
                [*timeline, sale],
                now,
            )
        try:
            why = sales.sell(
                lead.lead_id,
                token,
                partner,
                now,
                allowed=allowed,
                consumer=consumer,
                test=lead.test,
                finished=ending,
            )
        except (ClientError, BotoCoreError):
            stored = _reread(lead.lead_id)
            if stored is not None and str(partner.id) in stored.sold_to:
                why = None  # the sale was applied; only its answer was lost
                # It ended the lead only if this post's write made the sale (not a post that
                # took the lead over meanwhile and sold the same partner).
                ending = ending if stored.ended_by == token else None
            elif sold:
                logger.exception("sale failed; the lead's earlier sales are answered")
                break
            else:
                raise
        if why is None or why == sales.ALREADY:
            sold.append(partner)
            verdicts[partner.id] = "sold"
            timeline.append(sale)
            recorded = ending is not None and why is None
        elif why in (sales.LOST, sales.TIMES_SOLD):
            break
        else:
            verdicts[partner.id] = f"{why} (at sale)"
    ended, answer = _ended(vendor, lead, values, outcome, sold, verdicts, timeline, now)
    finished = recorded or _finish(ended, token)
    # Every sale of the lead is queued (again): a second message finds its sale delivered.
    enqueue_sales(lead.lead_id, [p.id for p in sold])
    if not finished:
        # Our claim went stale and another post took the lead over: its outcome stands.
        return _outcome(lead.lead_id, vendor)
    return answer


def _ended(
    vendor: Vendor,
    lead: Lead,
    values: Mapping[str, object],
    outcome: Outcome,
    sold: Sequence[Partner],
    verdicts: Mapping[int, str],
    timeline: Sequence[dict[str, Any]],
    now: datetime,
) -> tuple[Lead, Answer]:
    """The lead as a post that sold it to `sold` ends (its status, data, answer, decisions and
    the timeline to append, the answer last), and the answer."""
    answer = _answer(vendor, lead.lead_id, values, outcome.ranked, lead.cost, sold=sold)
    ended = replace(
        lead,
        status=SOLD if sold else UNSOLD,
        data=_wire(values),
        answer=answer.stored(),
        decisions=_decisions(outcome, verdicts),
        timeline=[*timeline, _event(now, "answer", answer.status)],
    )
    return ended, answer


def _finish(lead: Lead, token: str) -> bool:
    """Record the post's outcome (when its last sale did not); False when the claim was lost.
    Once a sale is recorded the answer stands, whatever fails here."""
    try:
        return leads.finish(lead, token)
    except (ClientError, BotoCoreError):
        if lead.status != SOLD:
            raise  # nothing was sold: the publisher may retry
        logger.exception("lead not finished; its recorded sales are answered")
        return True


def _reread(lead_id: int) -> Lead | None:
    """The lead as stored (after a sale's answer was lost), or None if it cannot be read."""
    try:
        return leads.get(lead_id)
    except (ClientError, BotoCoreError):
        return None


def _owned(lead_id: int, vendor: Vendor) -> Lead:
    lead = leads.get(lead_id)
    now = _now_ms()
    if (
        lead is None
        or lead.vendor_id != vendor.id  # another vendor's lead is as good as unknown
        or (lead.status == PINGED and lead.expires_at is not None and lead.expires_at < now // 1000)
    ):
        raise LeadNotFound(f"Lead_ID {lead_id} was not found or has expired")
    return lead


def _merged(lead: Lead, values: Mapping[str, object]) -> dict[str, object]:
    """The ping's data completed by the post's: the post wins, but its Cost is ignored."""
    data = dict(lead.data)
    posted = _wire(values)
    if "Zip" in posted and "State" not in posted:
        data.pop("State", None)  # the State comes from the new Zip
    data |= posted
    data["Cost"] = lead.data.get("Cost", "")
    merged = parse(present(data))
    problems = cross_check(merged)
    if problems:
        raise InvalidRequest(problems)
    return merged


def _check_selected(lead: Lead, selected: Sequence[HashedValue]) -> None:
    hash_type, value_type = (
        lead.data.get("Return_Hash_Type"),
        lead.data.get("Return_Hash_Value_Type"),
    )
    for value in selected:
        if (value.hash_type, value.value_type) != (hash_type, value_type):
            raise InvalidRequest(
                [
                    "Invalid Selected_Partner_Hash: HashType and ValueType must be those the ping "
                    f"asked for with Return_Hash_Type and Return_Hash_Value_Type ({hash_type}, "
                    f"{value_type})"
                ]
            )


def post(
    vendor: Vendor,
    values: dict[str, object],
    kept: dict[str, str],
    matches: Sequence[HashedValue] = (),
    selected: Sequence[HashedValue] = (),
) -> Answer:
    """Sell a pinged lead with its full data; a repeated post is told what the first was."""
    lead_id = values[LEAD_ID]
    assert isinstance(lead_id, int)  # validated as a count
    lead = _owned(lead_id, vendor)
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
        watched = _watch(lead, vendor)
        if isinstance(watched, Answer):
            return watched
        seen = watched
    merged = _merged(lead, values)
    _check_selected(lead, selected)
    now = datetime.now(UTC)
    timeline = [_event(now, "post", "received")]
    changed = [f for f in _MATCHED_ON if lead.data.get(f) != _wire(merged).get(f)]
    if changed:
        timeline.append(
            _event(now, "rematch", f"the post changed {', '.join(changed)}: matched again")
        )
    lead.data = _wire(merged)
    # A post that takes over finds the earlier post's Matches recorded: each is kept once.
    lead.matches = _stored(tuple(dict.fromkeys((*_restored(lead.matches), *matches))))
    lead.extra = lead.extra | kept
    _fits(lead.data, lead.extra, _restored(lead.matches))
    lead.consent = consent.record(merged, _ms(now), earlier=lead.consent)
    token = uuid.uuid4().hex
    # The post's data is recorded with the claim: the sales are delivered with it, whatever
    # fails after them.
    claimed = leads.claim(lead_id, vendor.id, token, _now_ms(), seen=seen, posted=lead)
    if claimed is None:
        return _outcome(lead_id, vendor)
    # A post that took the lead over continues from the sales recorded on it until now.
    lead.sold_to = claimed.sold_to
    criteria = Criteria.of(
        merged,
        lead.cost,
        vendor_matches=_restored(lead.matches),
        selected=tuple(selected),
        consent=consent.given(lead.consent) is True,
    )
    return _sell(vendor, lead, token, merged, criteria, now, timeline)


def _watch(lead: Lead, vendor: Vendor) -> Answer | tuple[str, int] | None:
    """Wait for another post of the lead: its answer when it finishes; the (claim, beat) it
    held when it made no progress while watched (it is presumed dead: take it over); None when
    the lead is waiting for a post again. Conflict when it progresses without finishing."""
    first = (lead.claim or "", lead.beat)
    deadline = time.monotonic() + settings().post_wait_seconds
    while time.monotonic() < deadline:
        time.sleep(_WAIT_STEP)
        lead = _owned(lead.lead_id, vendor)
        if lead.status in DONE:
            return Answer.restored(lead.answer)
        if lead.status != POSTING:
            return None
    if (lead.claim or "", lead.beat) == first:
        return first
    raise Conflict(f"Lead_ID {lead.lead_id} is being posted by another request; retry shortly")


def _outcome(lead_id: int, vendor: Vendor) -> Answer:
    """The answer a finished post gave, waiting a little for one that is under way."""
    deadline = time.monotonic() + settings().post_wait_seconds
    while True:
        lead = _owned(lead_id, vendor)
        if lead.status in DONE:
            return Answer.restored(lead.answer)
        if time.monotonic() >= deadline:
            raise Conflict(f"Lead_ID {lead_id} is being posted by another request; retry shortly")
        time.sleep(_WAIT_STEP)


def enqueue_sales(lead_id: int, partner_ids: list[int]) -> None:
    """Queue the delivery of a post's sales; the outbox keeps whatever SQS did not take."""
    if not partner_ids:
        return
    try:
        refused = queues.enqueue([Delivery(lead_id, p) for p in partner_ids])
    except (ClientError, BotoCoreError):
        logger.exception("delivery queue unavailable; the outbox keeps the sales")
        return
    queued = set(partner_ids) - {d.partner_id for d in refused}
    if refused:
        logger.error("delivery queue refused messages; the outbox keeps them")
    try:
        deliveries.clear_outbox(lead_id, queued)
    except (ClientError, BotoCoreError):
        # The sales stay in the outbox: the sweep sends them again, and a second message of a
        # sale finds it delivered or being sent.
        logger.exception("outbox not cleared; the sweep will send these sales again")

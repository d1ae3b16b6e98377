"""ping, post and full: the lead's life from the publisher's request to its sales."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal

from pingpost.config import settings
from pingpost.decoding import Request
from pingpost.errors import Conflict, Forbidden, InvalidRequest, LeadNotFound, Unauthorized
from pingpost.fields import LEAD_ID, MODES
from pingpost.matching import Criteria, HashedValue, match, partner_hash
from pingpost.models import Partner, Vendor
from pingpost.responses import MATCHED, UNMATCHED, Answer, Hash
from pingpost.store import leads, partners, vendors
from pingpost.store.counters import LeadIds, lead_ids
from pingpost.store.leads import DONE, PINGED, POSTING, Lead
from pingpost.validation import cross_check, extras, parse, present, validate

# Fields that are about one request, never part of the lead itself. The Key is a secret.
_NOT_KEPT = frozenset({"Key", "API_Action", "Mode", LEAD_ID})
_WAIT_STEP = 0.05


def submit(request: Request, path_mode: str | None = None) -> Answer:
    """Handle one pingPostLead request; `path_mode` is the mode its route implies, if any."""
    fields = present(request.fields)
    vendor = _vendor(fields.get("Key"))
    mode = _mode(fields, path_mode)
    values = validate(fields, mode, dynamic_pricing=vendor.dynamic_pricing)
    kept = extras(request.fields)
    if mode == "ping":
        return ping(vendor, values, kept, request.matches)
    if mode == "post":
        return post(vendor, values, kept, request.matches, request.selected)
    return full(vendor, values, kept, request.matches)


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


def _vendor(key: str | None) -> Vendor:
    if key is None:
        raise Unauthorized("Required value Key is missing")
    vendor = vendors.by_key(key)
    if vendor is None:
        raise Unauthorized("Invalid Key")
    if not vendor.active:
        raise Forbidden("This Key's vendor account is disabled")
    return vendor


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


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


def _price(vendor: Vendor, found: Sequence[Partner], cost: Decimal) -> Decimal:
    """The best price the lead can be accepted at, net of the vendor's margin."""
    if not vendor.dynamic_pricing:
        return cost
    if not found:
        return Decimal(0)
    return max(found[0].price - vendor.margin, Decimal(0))


def _answer(
    vendor: Vendor,
    lead_id: int,
    values: Mapping[str, object],
    found: Sequence[Partner],
    cost: Decimal,
    *,
    sold: int | None = None,
) -> Answer:
    """What a request is told: matched or not, and what it asked to be told besides."""
    count = min(len(found), _allowed(values, vendor)) if sold is None else sold
    hashes: tuple[Hash, ...] = ()
    hash_type, value_type = values.get("Return_Hash_Type"), values.get("Return_Hash_Value_Type")
    if isinstance(hash_type, str) and isinstance(value_type, str):
        hashes = tuple(
            Hash(value_type, hash_type, h)
            for p in found
            if (h := partner_hash(p, value_type, hash_type)) is not None
        )
    return Answer(
        status=MATCHED if count else UNMATCHED,
        lead_id=lead_id,
        price=_price(vendor, found, cost) if values.get("Return_Best_Price") else None,
        matches=count if "Allowed_Times_Sold" in values else None,
        hashes=hashes,
    )


def _cost(values: Mapping[str, object], vendor: Vendor) -> Decimal:
    cost = values.get("Cost")
    return cost if isinstance(cost, Decimal) else vendor.cost


def _stored(values: Sequence[HashedValue]) -> list[dict[str, str]]:
    return [
        {"value_type": v.value_type, "hash_type": v.hash_type, "value": v.value} for v in values
    ]


def _restored(values: Sequence[Mapping[str, str]]) -> tuple[HashedValue, ...]:
    return tuple(HashedValue(v["value_type"], v["hash_type"], v["value"]) for v in values)


def _sales(sold: Sequence[Partner]) -> list[dict[str, object]]:
    return [{"partner_id": p.id, "price": p.price} for p in sold]


def _new_lead(
    vendor: Vendor,
    values: dict[str, object],
    kept: dict[str, str],
    matches: Sequence[HashedValue],
    ids: LeadIds,
    *,
    sell: bool,
) -> Answer:
    """Match a lead and store it: sold (full), or waiting for its post (ping)."""
    cost = _cost(values, vendor)
    found = match(Criteria.of(values, cost, vendor_matches=tuple(matches)), partners.active())
    sold = found[: _allowed(values, vendor)] if sell else []
    lead_id = ids.next()
    answer = _answer(vendor, lead_id, values, found, cost, sold=len(sold) if sell else None)
    now = _now_ms()
    leads.add(
        Lead(
            lead_id=lead_id,
            vendor_id=vendor.id,
            status=(leads.SOLD if sold else leads.UNSOLD) if sell else PINGED,
            data=_wire(values),
            cost=cost,
            created_at=now,
            answer=answer.stored(),
            extra=kept,
            matches=_stored(matches),
            sales=_sales(sold),
            test=bool(values.get("Test_Lead")),
            expires_at=None if sell else now // 1000 + settings().ping_ttl_hours * 3600,
        )
    )
    return answer


def ping(
    vendor: Vendor,
    values: dict[str, object],
    kept: dict[str, str],
    matches: Sequence[HashedValue] = (),
    ids: LeadIds = lead_ids,
) -> Answer:
    """Match a partial lead, store it to await its post, and say whether it can be sold."""
    return _new_lead(vendor, values, kept, matches, ids, sell=False)


def full(
    vendor: Vendor,
    values: dict[str, object],
    kept: dict[str, str],
    matches: Sequence[HashedValue] = (),
    ids: LeadIds = lead_ids,
) -> Answer:
    """Ping and post in one request: match the whole lead and sell it."""
    return _new_lead(vendor, values, kept, matches, ids, sell=True)


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
    stale_ms = int(settings().claim_seconds * 1000)
    if lead.status in DONE:
        return Answer.restored(lead.answer)
    if lead.status == POSTING and (lead.claimed_at or 0) >= _now_ms() - stale_ms:
        return _outcome(lead_id, vendor)
    merged = _merged(lead, values)
    _check_selected(lead, selected)
    token = uuid.uuid4().hex
    if not leads.claim(lead_id, vendor.id, token, _now_ms(), stale_ms=stale_ms):
        return _outcome(lead_id, vendor)
    all_matches = (*_restored(lead.matches), *matches)
    criteria = Criteria.of(merged, lead.cost, vendor_matches=all_matches, selected=tuple(selected))
    found = match(criteria, partners.active())
    sold = found[: _allowed(merged, vendor)]
    answer = _answer(vendor, lead_id, merged, found, lead.cost, sold=len(sold))
    lead.status = leads.SOLD if sold else leads.UNSOLD
    lead.data = _wire(merged)
    lead.extra = lead.extra | kept
    lead.matches = _stored(all_matches)
    lead.sales = _sales(sold)
    lead.answer = answer.stored()
    if not leads.finish(lead, token):
        # Our claim went stale and another post took the lead over: its outcome stands.
        return _outcome(lead_id, vendor)
    return answer


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

"""What a request is told and what its lead records: pure functions of the lead's values.

The lead's values in the text form they arrive in, the price and answer a vendor is given, the
decisions and timeline a lead keeps, and the checks a lead must pass before anything is sold.
`pingpost.exchange` calls them between its reads and writes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pingpost.answers import MATCHED, UNMATCHED, Answer, Contact, Hash
from pingpost.config import settings
from pingpost.errors import Forbidden, InvalidRequest, PayloadTooLarge
from pingpost.fields import LEAD_ID, MAX_LEAD_BYTES, TYPE, TYPES, named, table
from pingpost.identity import HashedValue, partner_hash
from pingpost.matching import Outcome
from pingpost.models import SOLD, UNSOLD, Partner, Vendor
from pingpost.store.leads import Lead, Repeat
from pingpost.validation import cross_check, parse, present

# Fields that are about one request, never part of the lead itself. The Key is a secret.
_NOT_KEPT = frozenset({"Key", "API_Action", "Mode", LEAD_ID})
_CENT = Decimal("0.01")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def ms(at: datetime) -> int:
    """A moment in milliseconds since the epoch, as leads record time."""
    return int(at.timestamp() * 1000)


def wire(values: Mapping[str, object]) -> dict[str, str]:
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


def allowed(values: Mapping[str, object], vendor: Vendor) -> int:
    """How many partners the lead may be sold to: Allowed_Times_Sold, else the vendor's."""
    sent = values.get("Allowed_Times_Sold")
    return sent if isinstance(sent, int) else vendor.allowed_times_sold


def net(vendor: Vendor, price: Decimal) -> Decimal:
    """What the vendor gets of one sale at `price`, after the exchange's margin."""
    if vendor.margin_type == "percent":
        amount = price * (100 - vendor.margin) / 100
    else:
        amount = price - vendor.margin
    return max(amount, Decimal(0)).quantize(_CENT, rounding=ROUND_HALF_UP)


def margin(vendor: Vendor, price: Decimal, cost: Decimal, *, first: bool) -> Decimal:
    """What the exchange keeps of a sale at `price`: the price less what the vendor is owed
    for it. A vendor on dynamic pricing is owed each sale's net price (`net`); any other vendor
    the lead's cost, once, with the lead's first sale (as `best_price` tells it)."""
    if vendor.dynamic_pricing:
        return price - net(vendor, price)
    return price - cost if first else price


def best_price(vendor: Vendor, ranked: Sequence[Partner], cost: Decimal, most: int) -> Decimal:
    """The best price the lead can be accepted at (see the README: Return_Best_Price).

    On dynamic pricing: the sum, over the partners it would be sold to (at most
    Allowed_Times_Sold, best first), of each price net of the vendor's margin.
    Otherwise: the vendor's lead cost.
    """
    if not vendor.dynamic_pricing:
        return cost
    return sum((net(vendor, p.price) for p in ranked[:most]), Decimal(0))


def answer(
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
    most = allowed(values, vendor)
    count = min(len(ranked), most) if sold is None else len(sold)
    hashes: tuple[Hash, ...] = ()
    hash_type, value_type = values.get("Return_Hash_Type"), values.get("Return_Hash_Value_Type")
    if isinstance(hash_type, str) and isinstance(value_type, str):
        hashes = tuple(
            Hash(value_type, hash_type, h)
            for p in ranked
            if (h := partner_hash(p, value_type, hash_type)) is not None
        )
    # A price only with a match: nobody offered one for a lead that matched no partner.
    priced = bool(count and values.get("Return_Best_Price"))
    return Answer(
        status=MATCHED if count else UNMATCHED,
        lead_id=lead_id,
        price=best_price(vendor, ranked, cost, most) if priced else None,
        matches=count if "Allowed_Times_Sold" in values else None,
        hashes=hashes,
        partners=tuple(contact(p) for p in sold or ()),
    )


def contact(partner: Partner) -> Contact:
    """What `partner` lets vendors of the full response style see of it."""
    shown = {name: getattr(partner, name) for name in Contact._fields if name in partner.public}
    return Contact(**shown)


def cost(values: Mapping[str, object], vendor: Vendor) -> Decimal:
    """The lead's cost: its Cost, else the vendor's."""
    sent = values.get("Cost")
    return sent if isinstance(sent, Decimal) else vendor.cost


def stored(values: Sequence[HashedValue]) -> list[dict[str, str]]:
    """Matches as a lead records them."""
    return [
        {"value_type": v.value_type, "hash_type": v.hash_type, "value": v.value} for v in values
    ]


def restored(values: Sequence[Mapping[str, str]]) -> tuple[HashedValue, ...]:
    """The Matches a lead recorded."""
    return tuple(HashedValue(v["value_type"], v["hash_type"], v["value"]) for v in values)


def check_fits(
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


def event(at: datetime, name: str, detail: str) -> dict[str, Any]:
    """One entry of a lead's timeline."""
    return {"at": ms(at), "event": name, "detail": detail}


def decisions(outcome: Outcome, verdicts: Mapping[int, str] | None = None) -> list[list[Any]]:
    """Per partner considered: "sold", "matched", or the rule that excluded it."""
    verdicts = verdicts or {}
    return [
        [d.partner_id, verdicts.get(d.partner_id) or d.reason or "matched"]
        for d in outcome.decisions
    ]


def ended(
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
    told = answer(vendor, lead.lead_id, values, outcome.ranked, lead.cost, sold=sold)
    done = replace(
        lead,
        status=SOLD if sold else UNSOLD,
        data=wire(values),
        answer=told.stored(),
        decisions=decisions(outcome, verdicts),
        timeline=[*timeline, event(now, "answer", told.status)],
    )
    return done, told


def merged(lead: Lead, values: Mapping[str, object]) -> dict[str, object]:
    """The ping's data completed by the post's: the post wins, but its Cost is ignored."""
    data = dict(lead.data)
    posted = wire(values)
    place = table(posted).lead_type
    if place.zip in posted and place.state not in posted:
        data.pop(place.state, None)  # the state comes from the new ZIP code
    data |= posted
    data["Cost"] = lead.data.get("Cost", "")
    out = parse(present(data))
    problems = cross_check(out)
    if problems:
        raise InvalidRequest(problems)
    return out


def check_type(lead: Lead, sent: object) -> None:
    """Refuse a post whose TYPE (when it sends one) is not the TYPE its lead was pinged as."""
    pinged = str(lead.data.get(TYPE, ""))
    if sent is not None and sent != pinged:
        raise InvalidRequest(
            [
                f"Invalid value for TYPE: Lead_ID {lead.lead_id} was pinged as TYPE {pinged};"
                f" its post must send TYPE={pinged}"
            ]
        )


def check_may_send(vendor: Vendor, code: str | None) -> None:
    """Forbidden when the vendor may not send leads of the lead type `code` (its `lead_types`)."""
    allowed = vendor.lead_types
    if allowed is None or code is None or code not in TYPES or code in allowed:
        return  # a TYPE that is no type of the exchange is refused by validation (400)
    mine = named(allowed) or "none of the exchange's"
    raise Forbidden(f"This Key may not send leads of TYPE {code} ({TYPES[code].name}): only {mine}")


def check_selected(lead: Lead, selected: Sequence[HashedValue]) -> None:
    """Refuse Selected_Partner_Hash values not of the hash and value type the ping asked for."""
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


def repeat(
    vendor: Vendor,
    values: Mapping[str, object],
    kept: Mapping[str, str],
    matches: Sequence[HashedValue],
    idempotency_key: str | None,
    now: datetime,
) -> Repeat:
    """When a full request is the repeat of an earlier one (a publisher retrying).

    The same vendor sending the same Idempotency-Key header, or, without one, the same
    request (every field and value, extra fields and Matches included), within
    `repeat_seconds` of the first.
    """
    digest = hashlib.sha256(
        json.dumps([vendor.id, wire(values), kept, stored(matches)], sort_keys=True).encode()
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
    return Repeat(f"full#{vendor.id}#{name}", digest, expires)

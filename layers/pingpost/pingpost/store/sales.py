"""Sales: the lead, the partner's cap counters and the dedupe records, changed as one.

Every sale is one DynamoDB write: a transaction on the counters and leads tables, or the
lead's conditional UpdateItem alone when the partner has neither caps nor a dedupe window:
- the lead: one more time sold, to a partner it was not sold to, while this post holds it, with
  the vendor's and the partner's day figures for `pingpost report` riding on it
  (`pingpost.store.figures`);
- the partner's counters its caps need: the day's (sales and spend) for a daily cap or budget,
  the week's and the month's for those caps;
- a dedupe record per consumer identity (email, phone) that the partner must not buy again
  within its window, when it has one.
If any condition fails nothing changes, and the reason says which rule stopped the sale.
A test lead changes the lead alone: it consumes no cap and leaves no dedupe record.

What gives a sale's hold back is here too (a reserved sale released, a sale returned):
one module of over 400 lines on purpose, so that every write that takes or frees a partner's
caps, spend and dedupe records, and the conditions that keep them exact, read in one place.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pingpost.caps import Periods, Usage, periods
from pingpost.config import settings
from pingpost.models import POSTING, Partner
from pingpost.reasons import (
    DAILY_BUDGET,
    DAILY_CAP,
    MONTHLY_CAP,
    NOT_TEST_PARTNER,
    TEST_PARTNER,
    WEEKLY_CAP,
)
from pingpost.store import Expiring, counters, dynamodb, figures, from_item, to_item, transact
from pingpost.store.deliveries import DELIVERED, QUEUED, RELEASED, RESERVED, outbox_shard
from pingpost.store.figures import Tally
from pingpost.store.leads import CHARGED, Lead, finishing, kept_until

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

LOST = "the post no longer holds the lead"
ALREADY = "already sold to this partner"
TIMES_SOLD = "Allowed_Times_Sold reached"
DEDUPE = "bought this consumer within its dedupe window"
_DAY = 86_400
# Counters are kept a while after their period ends, for the operator's reports.
_KEEP_COUNTERS = 40 * _DAY
_ATTEMPTS = 5  # a sale's write, when it met a transaction at the same moment

_usage: Expiring[str, Mapping[str, Decimal]] = Expiring(lambda: settings().usage_cache_seconds)


def _counter_keys(partner_id: int, when: Periods) -> tuple[str, str, str]:
    return (
        f"cap#{partner_id}#day#{when.day}",
        f"cap#{partner_id}#week#{when.week}",
        f"cap#{partner_id}#month#{when.month}",
    )


def _capped(partner: Partner) -> tuple[bool, bool, bool]:
    """Whether the partner's day, week and month counters are needed to check its caps."""
    caps = partner.caps
    return bool(caps.daily or caps.daily_budget), bool(caps.weekly), bool(caps.monthly)


def _dedupe_key(partner_id: int, kind: str, value: str) -> str:
    # Only a hash of the consumer's email or phone is stored.
    digest = hashlib.sha256(value.strip().lower().encode()).hexdigest()
    return f"dedupe#{partner_id}#{kind}#{digest}"


def usage(partners: Sequence[Partner], now: datetime) -> dict[int, Usage]:
    """Each capped partner's sales in its current day, week and month, and its spend today;
    only the counters its caps need are read (the others count as 0; a partner without caps
    is left out: it uses nothing)."""
    capped = [p for p in partners if any(_capped(p))]
    keys = {p.id: _counter_keys(p.id, periods(p, now)) for p in capped}
    wanted = [
        key for p in capped for key, needed in zip(keys[p.id], _capped(p), strict=True) if needed
    ]
    values: dict[str, Mapping[str, Decimal]] = {
        k: v for k in wanted if (v := _usage.peek(k)) is not None
    }
    fresh = _read([k for k in wanted if k not in values])
    for key, counted in fresh.items():
        _usage.put(key, counted)
    values |= fresh
    out = {}
    for partner_id, (day, week, month) in keys.items():
        out[partner_id] = Usage(
            daily=int(values.get(day, {}).get("sold", 0)),
            weekly=int(values.get(week, {}).get("sold", 0)),
            monthly=int(values.get(month, {}).get("sold", 0)),
            spent_today=Decimal(values.get(day, {}).get("spent", 0)),
        )
    return out


def _read(keys: Sequence[str]) -> dict[str, Mapping[str, Decimal]]:
    found = counters.read(keys)
    return {key: found.get(key, {}) for key in keys}


def _lead_update(
    lead_id: int,
    token: str,
    partner: Partner,
    price: Decimal,
    allowed: int,
    now_ms: int,
    finished: Lead | None,
    reserve: Mapping[str, Any] | None = None,
    charged: Sequence[str] | None = None,
) -> TransactWriteItemTypeDef:
    # The sale joins the lead's outbox (outbox_sales) until its message is on the queue; a sale
    # reserved for its post waits for the buyer's answer instead, and is never queued.
    sets = (
        "sold_to.#p = :price, deliveries.#p = :queued, outbox = :shard,"
        " outbox_since = if_not_exists(outbox_since, :now)"
    )
    names = {"#s": "status", "#p": str(partner.id)}
    if charged is not None:
        # What the sale counted, and when: what a return gives back (`give_back`).
        sets += ", #charged = :charged"
        names["#charged"] = charged_name(partner.id)
    update = " ADD times_sold :one, beat :one" + (
        "" if reserve is not None else ", outbox_sales :sale"
    )
    values: dict[str, Any] = {
        ":price": price,
        ":one": 1,
        ":posting": POSTING,
        ":token": token,
        ":allowed": allowed,
        ":queued": dict(reserve) if reserve is not None else {"state": QUEUED, "attempts": 0},
        ":shard": outbox_shard(lead_id),
        ":now": now_ms,
    }
    if reserve is None:
        values[":sale"] = {partner.id}
    if charged is not None:
        values[":charged"] = charge_text(partner.id, now_ms, charged)
    if finished is not None:
        # The post's last sale records its outcome too: no write of its own.
        more, removes, more_names, more_values = finishing(finished)
        sets += ", " + more
        update += " REMOVE " + removes
        names |= more_names
        values |= more_values
    return {
        "Update": {
            "TableName": settings().leads_table,
            "Key": {"lead_id": {"N": str(lead_id)}},
            "UpdateExpression": "SET " + sets + update,
            "ConditionExpression": (
                "#s = :posting AND claim = :token AND attribute_not_exists(sold_to.#p)"
                " AND (attribute_not_exists(times_sold) OR times_sold < :allowed)"
            ),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_item(values),
        }
    }


def _counter_update(
    key: str,
    price: Decimal | None,
    cap: int,
    budget_left: Decimal | None,
    expires: int,
    *,
    back: bool = False,
) -> TransactWriteItemTypeDef:
    """One more sold (and `price` spent) on a counter, within its cap and budget; `back`: one
    less sold and `price` (negative) given back, its expiry as it was (`expires` when the
    counter has none: it expired meanwhile, and this write makes it again)."""
    conditions = []
    values: dict[str, Any] = {":one": -1 if back else 1, ":expires": expires}
    update = "ADD sold :one SET expires_at = :expires"
    if price is not None:
        update = "ADD sold :one, spent :price SET expires_at = :expires"
        values[":price"] = price
    if back:
        update = update.replace(":expires", "if_not_exists(expires_at, :expires)")
    if cap:
        conditions.append("(attribute_not_exists(sold) OR sold < :cap)")
        values[":cap"] = cap
    if budget_left is not None:
        conditions.append("(attribute_not_exists(spent) OR spent <= :left)")
        values[":left"] = budget_left
    item: Any = {
        "TableName": settings().counters_table,
        "Key": {"counter": {"S": key}},
        "UpdateExpression": update,
        "ExpressionAttributeValues": to_item(values),
    }
    if conditions:
        item["ConditionExpression"] = " AND ".join(conditions)
    return {"Update": item}


def _dedupe_put(key: str, lead_id: int, now: int, days: int) -> TransactWriteItemTypeDef:
    return {
        "Put": {
            "TableName": settings().counters_table,
            # It names a consumer (a hash of an email or phone): kept no longer than leads are.
            "Item": to_item(
                {
                    "counter": key,
                    "lead_id": lead_id,
                    "expires_at": min(now + days * _DAY, kept_until(now)),
                }
            ),
            "ConditionExpression": "attribute_not_exists(#c) OR expires_at < :now",
            "ExpressionAttributeNames": {"#c": "counter"},
            "ExpressionAttributeValues": {":now": {"N": str(now)}},
        }
    }


def sell(
    lead_id: int,
    token: str,
    partner: Partner,
    now: datetime,
    *,
    allowed: int,
    consumer: Mapping[str, str],
    test: bool,
    finished: Lead | None = None,
    tallies: Sequence[Tally] = (),
    reserve: Mapping[str, Any] | None = None,
) -> str | None:
    """Sell the lead to `partner` at its price; None when sold, else why it was not.

    `consumer` maps "email"/"phone" to the lead's values, for the partner's dedupe window.
    `finished`: the lead as the post ends if this sale is made (its last): recorded with it.
    `tallies`: the day figures the sale adds, counted if it is made.
    `reserve`: the sale of a buyer that won by its bid is held (caps, budget, dedupe, times
    sold) while it is posted, and the lead keeps this record of it (`reservation`): `confirm`
    makes it a sale, `release` gives back what it took.
    """
    if partner.test != test:
        return TEST_PARTNER if partner.test else NOT_TEST_PARTNER  # test leads to test partners
    price = partner.price
    now_ms = int(now.timestamp() * 1000)
    charged = None if test else counted_in(partner, now)
    lead = _lead_update(lead_id, token, partner, price, allowed, now_ms, finished, reserve, charged)
    items = [lead]
    reasons = ["lead"]
    if not test:
        caps = partner.caps
        epoch = int(now.timestamp())
        day, week, month = _counter_keys(partner.id, periods(partner, now))
        left = None
        if caps.daily_budget:
            left = caps.daily_budget - price
            if left < 0:
                return DAILY_BUDGET
        daily, weekly, monthly = _capped(partner)
        if daily:
            items.append(_counter_update(day, price, caps.daily, left, epoch + _KEEP_COUNTERS))
            reasons.append(
                f"{DAILY_CAP} or budget"
                if caps.daily and caps.daily_budget
                else (DAILY_BUDGET if caps.daily_budget else DAILY_CAP)
            )
        if weekly:
            items.append(_counter_update(week, None, caps.weekly, None, epoch + _KEEP_COUNTERS))
            reasons.append(WEEKLY_CAP)
        if monthly:
            items.append(_counter_update(month, None, caps.monthly, None, epoch + _KEEP_COUNTERS))
            reasons.append(MONTHLY_CAP)
        if partner.dedupe_days:
            for kind, value in sorted(consumer.items()):
                if value:
                    key = _dedupe_key(partner.id, kind, value)
                    items.append(_dedupe_put(key, lead_id, epoch, partner.dedupe_days))
                    reasons.append(DEDUPE)
    if not test:  # the day figures ride on the lead's write (figures.carrying)
        carried: Any = {"Update": figures.carrying(lead["Update"], tallies)}
        items[0] = carried
    # A sale that counts in no counter and holds no dedupe record is the lead's write alone:
    # one UpdateItem, half what a transaction of it costs.
    codes = transact(items) if len(items) > 1 else _sold(items[0]["Update"], partner.id, token)
    if codes is not None:
        return _why(codes, reasons, partner, lead_id)
    for key in _counter_keys(partner.id, periods(partner, now)):
        _usage.forget(key)
    return None


def _why(
    codes: Sequence[str | None], reasons: Sequence[str], partner: Partner, lead_id: int
) -> str:
    failed = [reasons[i] for i, code in enumerate(codes) if code == "ConditionalCheckFailed"]
    if "lead" not in failed:
        return failed[0]
    # The lead refused: lost claim, already sold to this partner, or sold enough times.
    from pingpost.store import leads

    lead = leads.get(lead_id)
    if lead is None or lead.status != POSTING:
        return LOST
    if str(partner.id) in lead.sold_to:
        return ALREADY
    return TIMES_SOLD


def _sold(update: Mapping[str, Any], partner_id: int, token: str) -> list[str | None] | None:
    """Write a sale that is the lead's write alone (`sell`): None when made, else the code a
    transaction would give. An attempt whose answer was lost may have made it already (botocore
    tries again, and the second finds its condition false): the lead as it was then says so,
    sold to the partner by this post (which holds the claim, or ended the post with it)."""
    for attempt in range(_ATTEMPTS):
        try:
            dynamodb().update_item(**update, ReturnValuesOnConditionCheckFailure="ALL_OLD")
            return None
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code == "TransactionConflictException" and attempt < _ATTEMPTS - 1:
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
                continue
            if code != "ConditionalCheckFailedException":
                raise
            found: Any = error.response.get("Item", {})
            was = from_item(found)
            ours = token in (was.get("claim"), was.get("ended_by"))
            if ours and str(partner_id) in was.get("sold_to", {}):
                return None
            return ["ConditionalCheckFailed"]
    raise RuntimeError("unreachable")  # pragma: no cover


def _reserved(lead_id: int, partner_id: int, token: str) -> dict[str, Any]:
    """The condition that this post holds the lead and the sale is reserved, with its values."""
    return {
        "ConditionExpression": "#s = :posting AND claim = :token AND deliveries.#p.#st = :reserved",
        "names": {"#s": "status", "#p": str(partner_id), "#st": "state"},
        "values": {":posting": POSTING, ":token": token, ":reserved": RESERVED},
    }


def confirm(
    lead_id: int,
    token: str,
    partner_id: int,
    detail: str,
    now_ms: int,
    tallies: Sequence[Tally] = (),
) -> bool:
    """The buyer accepted the post of a reserved sale: it is a sale, delivered (`detail`: how
    it answered), and `tallies` (its day figures) are counted. False when this post no longer
    holds the lead or the sale is not reserved (written already, or released)."""
    held = _reserved(lead_id, partner_id, token)
    update: Any = {
        "TableName": settings().leads_table,
        "Key": {"lead_id": {"N": str(lead_id)}},
        "UpdateExpression": "SET deliveries.#p = :delivered ADD beat :one",
        "ConditionExpression": held["ConditionExpression"],
        "ExpressionAttributeNames": held["names"],
        "ExpressionAttributeValues": to_item(
            held["values"]
            | {
                ":delivered": {"state": DELIVERED, "attempts": 1, "detail": detail, "at": now_ms},
                ":one": 1,
            }
        ),
    }
    return figures.write(update, tallies)


def reservation(
    partner: Partner, now: datetime, consumer: Mapping[str, str], *, until: int, test: bool
) -> dict[str, Any]:
    """The record a lead keeps of a sale reserved for its buyer's answer (see `sell`): when it
    was made and may last until (epoch ms), its price, and what it holds by key, so that
    whoever gives it back needs nothing else (the partner may change meanwhile): the counters
    it counts in (the day's, when it has one, takes the spend too), its dedupe records. A test
    lead's reservation holds none."""
    counted = [] if test else counted_in(partner, now)
    dedupe = (
        [_dedupe_key(partner.id, kind, v) for kind, v in sorted(consumer.items()) if v]
        if partner.dedupe_days and not test
        else []
    )
    return {
        "state": RESERVED,
        "at": int(now.timestamp() * 1000),
        "until": until,
        "price": partner.price,
        "counters": counted,
        "dedupe": dedupe,
    }


def credits(lead_id: int, record: Mapping[str, Any]) -> list[TransactWriteItemTypeDef]:
    """What gives back a reserved sale's hold (`record`: the reservation as the lead keeps it):
    one less sold in each counter it counted in and its price less spent on the day's (when it
    counted in one), and its dedupe records (those of this lead only)."""
    price = Decimal(record["price"])
    expires = int(time.time()) + _KEEP_COUNTERS
    items: list[TransactWriteItemTypeDef] = [
        _counter_update(key, -price if "#day#" in key else None, 0, None, expires, back=True)
        for key in record.get("counters", [])
    ]
    for key in record.get("dedupe", []):
        items.append(
            {
                "Delete": {
                    "TableName": settings().counters_table,
                    "Key": {"counter": {"S": key}},
                    "ConditionExpression": "attribute_not_exists(#c) OR lead_id = :lead",
                    "ExpressionAttributeNames": {"#c": "counter"},
                    "ExpressionAttributeValues": {":lead": {"N": str(lead_id)}},
                }
            }
        )
    return items


def release(
    lead_id: int,
    token: str,
    partner_id: int,
    record: Mapping[str, Any],
    *,
    why: str = "",
    tallies: Sequence[Tally] = (),
) -> bool:
    """Give back a reserved sale the buyer did not accept (`why`: rejected, timed out, failed,
    or abandoned by a post that died): the lead is not sold to it (one fewer times sold) and
    keeps that it was posted (a RELEASED record: never posted again), and what the hold took
    (its record says: counters, spend, dedupe records) is given back. False when `token`'s post
    no longer holds the lead or the sale is not reserved (released already, or confirmed)."""
    held = _reserved(lead_id, partner_id, token)
    released = {"state": RELEASED, "detail": why, "at": record["at"]}
    lead: TransactWriteItemTypeDef = {
        "Update": {
            "TableName": settings().leads_table,
            "Key": {"lead_id": {"N": str(lead_id)}},
            "UpdateExpression": (
                "SET deliveries.#p = :released REMOVE sold_to.#p, #charged"
                " ADD times_sold :less, beat :one"
            ),
            "ConditionExpression": held["ConditionExpression"],
            "ExpressionAttributeNames": held["names"] | {"#charged": charged_name(partner_id)},
            "ExpressionAttributeValues": to_item(
                held["values"] | {":less": -1, ":one": 1, ":released": released}
            ),
        }
    }
    lead = {"Update": figures.carrying(lead["Update"], tallies)}  # type: ignore[typeddict-item]
    if transact([lead, *credits(lead_id, record)]) is not None:
        return False
    for key in record.get("counters", []):
        _usage.forget(key)
    return True


def counted_in(partner: Partner, now: datetime) -> list[str]:
    """The counters a sale to `partner` at `now` counts in: those its caps need (the day's,
    which takes the spend too, for a daily cap or budget; the week's and the month's). A cap
    counts the sales made while the partner has it."""
    day, week, month = _counter_keys(partner.id, periods(partner, now))
    daily, weekly, monthly = _capped(partner)
    return [day] * daily + [week] * weekly + [month] * monthly


def charge_text(partner_id: int, at_ms: int, counters: Sequence[str]) -> str:
    """What a lead keeps of a sale's hold, compact (it is on every sale): when it was made and
    its counters, e.g. `1796601600000|day#2026-12-07|week#2026-W50`."""
    prefix = f"cap#{partner_id}#"
    return "|".join([str(at_ms), *(key.removeprefix(prefix) for key in counters)])


def charge_of(partner_id: int, text: str) -> dict[str, Any]:
    """The sale's hold a lead keeps (`charge_text`): {"at": epoch ms, "counters": [keys]}."""
    at, *kept = text.split("|")
    return {"at": int(at), "counters": [f"cap#{partner_id}#{period}" for period in kept]}


def charged_name(partner_id: int) -> str:
    """The lead's attribute of what its sale to the partner counted (`Lead.charged`)."""
    return f"{CHARGED}{partner_id}"


def give_back(
    lead_id: int,
    partner_id: int,
    charged: Mapping[str, Any],
    record: Mapping[str, Any],
    tallies: Sequence[Tally] = (),
) -> bool:
    """Record that the partner returned the lead it bought (`record`: the return, its price
    among them), and give back what the sale counted (`charged`: its counters, none for a test
    lead's): one less sold in each, and the price less spent in the day's (if any), with
    `tallies` (the day figures the return takes off). False when the lead refused (the partner
    did not buy it, its sale is reserved, or it was returned already): nothing changes."""
    lead: TransactWriteItemTypeDef = {
        "Update": {
            "TableName": settings().leads_table,
            "Key": {"lead_id": {"N": str(lead_id)}},
            "UpdateExpression": (
                "SET #r = list_append(if_not_exists(#r, :none), :return) ADD returned_to :p"
            ),
            "ConditionExpression": (
                "attribute_exists(sold_to.#p)"
                " AND (attribute_not_exists(deliveries.#p.#st) OR deliveries.#p.#st <> :held)"
                " AND (attribute_not_exists(returned_to) OR NOT contains(returned_to, :id))"
            ),
            "ExpressionAttributeNames": {"#p": str(partner_id), "#r": "returns", "#st": "state"},
            "ExpressionAttributeValues": to_item(
                {
                    ":none": [],
                    ":return": [dict(record)],
                    ":p": {partner_id},
                    ":id": partner_id,
                    ":held": RESERVED,
                }
            ),
        }
    }
    given = credits(lead_id, {"price": record["price"], "counters": charged.get("counters", [])})
    lead = {"Update": figures.carrying(lead["Update"], tallies)}  # type: ignore[typeddict-item]
    if transact([lead, *given]) is not None:
        return False
    for key in charged.get("counters", []):
        _usage.forget(key)
    return True

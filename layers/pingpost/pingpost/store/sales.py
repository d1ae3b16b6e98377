"""Sales: the lead, the partner's cap counters and the dedupe records, changed as one.

Every sale is one DynamoDB transaction on the counters and leads tables:
- the lead: one more time sold, to a partner it was not sold to, while this post holds it;
- the partner's day counter (sales and spend, the day's figures for reports and for a daily cap
  or budget), and its week and month counters only when it has a weekly or monthly cap;
- a dedupe record per consumer identity (email, phone) that the partner must not buy again
  within its window, when it has one;
- the vendor's and the partner's day figures for `pingpost report` (`pingpost.store.figures`).
If any condition fails nothing changes, and the reason says which rule stopped the sale.
A test lead changes the lead alone: it consumes no cap and leaves no dedupe record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

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
from pingpost.store import Expiring, counters, figures, to_item, transact
from pingpost.store.deliveries import QUEUED, outbox_shard
from pingpost.store.figures import Tally
from pingpost.store.leads import Lead, finishing, kept_until

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

LOST = "the post no longer holds the lead"
ALREADY = "already sold to this partner"
TIMES_SOLD = "Allowed_Times_Sold reached"
DEDUPE = "bought this consumer within its dedupe window"
_DAY = 86_400
# Counters are kept a while after their period ends, for the operator's reports.
_KEEP_COUNTERS = 40 * _DAY

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
    """Each partner's sales in its current day, week and month, and its spend today; only the
    counters its caps need are read (the others count as 0)."""
    keys = {p.id: _counter_keys(p.id, periods(p, now)) for p in partners}
    wanted = [
        key for p in partners for key, needed in zip(keys[p.id], _capped(p), strict=True) if needed
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
) -> TransactWriteItemTypeDef:
    # The sale joins the lead's outbox (outbox_sales) until its message is on the queue.
    sets = (
        "sold_to.#p = :price, deliveries.#p = :queued, outbox = :shard,"
        " outbox_since = if_not_exists(outbox_since, :now)"
    )
    update = " ADD times_sold :one, outbox_sales :sale, beat :one"
    names = {"#s": "status", "#p": str(partner.id)}
    values: dict[str, Any] = {
        ":price": price,
        ":one": 1,
        ":posting": POSTING,
        ":token": token,
        ":allowed": allowed,
        ":queued": {"state": QUEUED, "attempts": 0},
        ":shard": outbox_shard(lead_id),
        ":now": now_ms,
        ":sale": {partner.id},
    }
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
    key: str, price: Decimal | None, cap: int, budget_left: Decimal | None, expires: int
) -> TransactWriteItemTypeDef:
    conditions = []
    values: dict[str, Any] = {":one": 1, ":expires": expires}
    update = "ADD sold :one SET expires_at = :expires"
    if price is not None:
        update = "ADD sold :one, spent :price SET expires_at = :expires"
        values[":price"] = price
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
) -> str | None:
    """Sell the lead to `partner` at its price; None when sold, else why it was not.

    `consumer` maps "email"/"phone" to the lead's values, for the partner's dedupe window.
    `finished`: the lead as the post ends if this sale is made (its last): recorded with it.
    `tallies`: the day figures the sale adds, counted if it is made.
    """
    if partner.test != test:
        return TEST_PARTNER if partner.test else NOT_TEST_PARTNER  # test leads to test partners
    price = partner.price
    now_ms = int(now.timestamp() * 1000)
    items = [_lead_update(lead_id, token, partner, price, allowed, now_ms, finished)]
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
        items.append(_counter_update(day, price, caps.daily, left, epoch + _KEEP_COUNTERS))
        reasons.append(
            f"{DAILY_CAP} or budget"
            if caps.daily and caps.daily_budget
            else (DAILY_BUDGET if caps.daily_budget else DAILY_CAP)
        )
        _, weekly, monthly = _capped(partner)
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
    # Each day item once (a transaction may not name an item twice); they have no condition.
    counted = [] if test else [figures.adding(t) for t in figures.merged(tallies)]
    items += counted
    reasons += ["day figures"] * len(counted)
    codes = transact(items)
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

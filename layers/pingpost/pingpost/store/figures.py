"""The day figures `pingpost report` reads: per UTC day, per vendor and per partner.

They are items of the counters table, not of a table of their own, because they are what its
other items are: counters ADDed by key inside writes a request makes anyway (the sale's
transaction already writes the partner's cap counters there), read back by key
(BatchGetItem), never scanned. Every function that writes them already had the table, and a
table of its own would be one more resource to create, back up and grant for items of a few
bytes. Keys (days are UTC, YYYY-MM-DD):

- `day#<day>#vendor#<vendor ID>#<shard>`: a vendor's pings, matched, posts, sales, revenue and
  margin. Every ping of the vendor writes it, so it is spread over SHARDS items by lead ID
  (one item takes about 1,000 writes a second); the report adds the shards up.
- `day#<day>#partner#<partner ID>`: a partner's sales, revenue, margin, deliveries failed and
  parked. One item: it is written on a sale, as the partner's cap day counter already is.

An ADD is applied with the write that records what it counts, in one transaction, so a write
that fails or is refused counts nothing and a repeat that writes nothing counts nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pingpost.config import settings
from pingpost.store import counters, dynamodb, to_item, transact

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

SHARDS = 8
# Kept about 13 months, so a report can compare a month with the same month a year before.
_KEEP_SECONDS = 400 * 86_400


@dataclass(frozen=True)
class Figures:
    """What happened on a day (or what one write adds to it)."""

    pings: int = 0  # leads received by ping and full requests
    matched: int = 0  # of those, answered Matched
    posts: int = 0  # posts and full requests whose outcome was recorded
    sales: int = 0
    revenue: Decimal = Decimal(0)  # the partners' prices of the sales
    margin: Decimal = Decimal(0)  # what the exchange keeps of them (answering.margin)
    failed: int = 0  # delivery attempts that failed
    parked: int = 0  # deliveries given up (failed for good)
    returns: int = 0  # sales returned (their revenue and margin taken off the day they were)

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Figures:
        """The figures an item holds (an attribute it lacks counts 0)."""
        read: dict[str, Any] = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        for name in ("pings", "matched", "posts", "sales", "failed", "parked", "returns"):
            if name in read:
                read[name] = int(read[name])
        return cls(**read)


@dataclass(frozen=True)
class Tally:
    """Figures to ADD to the day item named `key`."""

    key: str
    figures: Figures


def day(at: datetime | date) -> str:
    """The UTC day a time falls on (a date is its own day)."""
    if isinstance(at, datetime):
        at = at.astimezone(UTC).date()
    return at.isoformat()


def vendor_key(vendor_id: str, on: str, shard: int) -> str:
    """The key of one shard of a vendor's day."""
    return f"day#{on}#vendor#{vendor_id}#{shard}"


def partner_key(partner_id: int, on: str) -> str:
    """The key of a partner's day."""
    return f"day#{on}#partner#{partner_id}"


def vendor_day(vendor_id: str, lead_id: int, at: datetime, figures: Figures) -> Tally:
    """Figures of a vendor's lead, for its day (the shard is the lead's)."""
    return Tally(vendor_key(vendor_id, day(at), lead_id % SHARDS), figures)


def partner_day(partner_id: int, at: datetime, figures: Figures) -> Tally:
    """Figures of a partner, for its day."""
    return Tally(partner_key(partner_id, day(at)), figures)


def merged(tallies: Sequence[Tally]) -> list[Tally]:
    """One tally per key: a transaction may not name the same item twice."""
    out: dict[str, Figures] = {}
    for tally in tallies:
        out[tally.key] = out.get(tally.key, Figures()) + tally.figures
    return [Tally(key, figures) for key, figures in out.items()]


def adding(tally: Tally) -> TransactWriteItemTypeDef:
    """The transaction item that ADDs a tally's figures (those that are not 0)."""
    values = {f.name: getattr(tally.figures, f.name) for f in fields(Figures)}
    added = {k: v for k, v in values.items() if v}
    update = "SET expires_at = :expires"
    if added:
        update = "ADD " + ", ".join(f"#{k} :{k}" for k in added) + " " + update
    item: Any = {
        "TableName": settings().counters_table,
        "Key": {"counter": {"S": tally.key}},
        "UpdateExpression": update,
        "ExpressionAttributeValues": to_item(
            {f":{k}": v for k, v in added.items()} | {":expires": _expires()}
        ),
    }
    if added:
        item["ExpressionAttributeNames"] = {f"#{k}": k for k in added}
    return {"Update": item}


def _expires() -> int:
    return int(time.time()) + _KEEP_SECONDS


def write(update: Mapping[str, Any], tallies: Sequence[Tally]) -> bool:
    """Apply a conditional UpdateItem (its parameters) and the tallies' ADDs together: one
    UpdateItem without tallies, else one transaction. False when the update's condition failed.
    """
    if not tallies:
        try:
            dynamodb().update_item(**update)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
    # Only the update has a condition: a refusal is its own.
    return transact([{"Update": dict(update)}, *(adding(t) for t in merged(tallies))]) is None


def read(keys: Sequence[str]) -> dict[str, Figures]:
    """The figures of the day items named (eventually consistent; a missing item is absent)."""
    return {key: Figures.of(values) for key, values in counters.read(keys).items()}

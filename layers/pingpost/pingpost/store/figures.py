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

What buyers that bid did is kept as attributes `bid#<partner ID>#<what>` (`Figures.bids`):
- `day#<day>#bids#<vendor ID>#<shard>`: what the auctions of the vendor's leads asked of each
  buyer (asked, timeouts, and its bids counted by step of about 10%, `#at#<step>`, for their
  number and median), written with the lead's first write (one more item in it) by a ping or
  full request that asked buyers, and by no other: a ping without an auction pays nothing for
  it. The item grows with the buyers asked and their steps (about 15 to 20 bytes an attribute).
- the partner's day item: its posts (won) and those it accepted, with the post's confirmation
  (which writes that item anyway) or release (one more item in its transaction).

An ADD is applied with the write that records what it counts, in one transaction, so a write
that fails or is refused counts nothing and a repeat that writes nothing counts nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from secrets import token_hex
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pingpost.config import settings
from pingpost.store import counters, dynamodb, from_item, to_item, transact

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

SHARDS = 8
TALLY = "tally"  # the lead's attribute: its last write's day figures, for the figures function
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
    # What buyers that bid did: bid#<partner ID>#<what> -> count or total (see `bid_key`).
    bids: Mapping[str, Decimal] = field(default_factory=dict)

    def __add__(self, other: Figures) -> Figures:
        added = {
            f.name: getattr(self, f.name) + getattr(other, f.name)
            for f in fields(self)
            if f.name != "bids"
        }
        bids = dict(self.bids)
        for key, value in other.bids.items():
            bids[key] = bids.get(key, Decimal(0)) + value
        return Figures(**added, bids=bids)

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Figures:
        """The figures an item holds (an attribute it lacks counts 0)."""
        read: dict[str, Any] = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        for name in ("pings", "matched", "posts", "sales", "failed", "parked", "returns"):
            if name in read:
                read[name] = int(read[name])
        read["bids"] = {k: Decimal(v) for k, v in values.items() if k.startswith(_BID)}
        return cls(**read)


_BID = "bid#"
# What is counted of a buyer that bids (a Figures.bids key's last part).
ASKED, TIMEOUTS, WON, ACCEPTED = "asked", "timeouts", "won", "took"
STEP = "at#"  # ... followed by the step, in cents
# The steps bids are counted by for their median: 1.0, 1.1, ... 9.0 times a power of ten.
_STEPS: tuple[int, ...] = (10, 11, 12, 13, 14, 15, 16, 18, 20, 22, 25, 28, 30, 33, 36, 40, 45)
_STEPS += (50, 55, 60, 70, 80, 90)


def bid_key(partner_id: int | str, what: str) -> str:
    """The name of what is counted of a buyer that bids."""
    return f"{_BID}{partner_id}#{what}"


def _steps(cents: int) -> tuple[int, list[int]]:
    """The power of ten whose steps `cents` falls among, and those steps (in cents)."""
    scale = int(10 ** (len(str(cents)) - 2))
    return scale, [step * scale for step in _STEPS]


def bid_step(price: Decimal) -> int:
    """The step a bid is counted in for its median, in cents: the largest of 1.0, 1.1, 1.2, ...
    9.0 times a power of ten not above it (25.00 to 27.99 count in 2500); whole cents below
    0.10."""
    cents = max(int(price * 100), 1)
    if cents < 10:
        return cents
    _, steps = _steps(cents)
    return max(step for step in steps if step <= cents)


def _step_after(cents: int) -> int:
    if cents < 10:
        return cents + 1
    scale, steps = _steps(cents)
    return next((step for step in steps if step > cents), 100 * scale)


def bid_median(
    bids: Mapping[str, Decimal], partner_id: int | str
) -> tuple[Decimal, Decimal] | None:
    """The step the partner's median bid (the lower median) falls in, as dollars (from, to);
    None without bids."""
    prefix = bid_key(partner_id, STEP)
    counted = sorted((int(k[len(prefix) :]), n) for k, n in bids.items() if k.startswith(prefix))
    total = sum(n for _, n in counted)
    seen = Decimal(0)
    for cents, n in counted:
        seen += n
        if total and seen * 2 >= total:
            return Decimal(cents) / 100, Decimal(_step_after(cents)) / 100
    return None


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


def bids_key(vendor_id: str, on: str, shard: int) -> str:
    return f"day#{on}#bids#{vendor_id}#{shard}"


def bids_day(vendor_id: str, lead_id: int, at: datetime, bids: Mapping[str, Decimal]) -> Tally:
    """What an auction of a vendor's lead counted of its buyers, for its day (the lead's shard)."""
    return Tally(bids_key(vendor_id, day(at), lead_id % SHARDS), Figures(bids=bids))


def bids_made(bids: Mapping[str, Decimal], partner_id: int | str) -> Decimal:
    """How many bids the partner made: its bids counted by step, added up."""
    prefix = bid_key(partner_id, STEP)
    return sum((n for k, n in bids.items() if k.startswith(prefix)), Decimal(0))


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
    values = {f.name: getattr(tally.figures, f.name) for f in fields(Figures) if f.name != "bids"}
    named = {k: (k, v) for k, v in values.items() if v}
    named |= {f"b{n}": kv for n, kv in enumerate(sorted(tally.figures.bids.items())) if kv[1]}
    update = "SET expires_at = :expires"
    if named:
        update = "ADD " + ", ".join(f"#{k} :{k}" for k in named) + " " + update
    item: Any = {
        "TableName": settings().counters_table,
        "Key": {"counter": {"S": tally.key}},
        "UpdateExpression": update,
        "ExpressionAttributeValues": to_item(
            {f":{k}": v for k, (_, v) in named.items()} | {":expires": _expires()}
        ),
    }
    if named:
        item["ExpressionAttributeNames"] = {f"#{k}": name for k, (name, _) in named.items()}
    return {"Update": item}


def _added(figures: Figures) -> dict[str, Any]:
    """A tally's figures that are not 0, by the name its day item keeps them under."""
    values = {f.name: getattr(figures, f.name) for f in fields(Figures) if f.name != "bids"}
    return {k: v for k, v in values.items() if v} | {k: v for k, v in figures.bids.items() if v}


def _expires() -> int:
    return int(time.time()) + _KEEP_SECONDS


def riding(tallies: Sequence[Tally]) -> dict[str, Any] | None:
    """What a write of a lead carries of its day figures (its `tally` attribute, which the
    figures function adds to the day items from the leads table's stream): a new ID, and the
    figures by day item. None without figures."""
    counted = {t.key: _added(t.figures) for t in merged(tallies)}
    counted = {key: values for key, values in counted.items() if values}
    return {"id": token_hex(8), "t": counted} if counted else None


def carrying(update: Mapping[str, Any], tallies: Sequence[Tally]) -> dict[str, Any]:
    """An UpdateItem of a lead (its parameters) that also sets its `tally` (`riding`)."""
    tally = riding(tallies)
    out = dict(update)
    if tally is None:
        return out
    expression = str(update["UpdateExpression"])
    set_tally = f"#{TALLY} = :{TALLY}"
    out["UpdateExpression"] = (
        f"SET {set_tally}, {expression[4:]}"
        if expression.startswith("SET ")
        else f"SET {set_tally} {expression}"
    )
    out["ExpressionAttributeNames"] = {
        **update.get("ExpressionAttributeNames", {}),
        f"#{TALLY}": TALLY,
    }
    out["ExpressionAttributeValues"] = {
        **update.get("ExpressionAttributeValues", {}),
        f":{TALLY}": to_item({TALLY: tally})[TALLY],
    }
    return out


def write(update: Mapping[str, Any], tallies: Sequence[Tally]) -> bool:
    """Apply a conditional UpdateItem of a lead (its parameters), carrying the tallies (see
    `carrying`). False when the update's condition failed."""
    try:
        dynamodb().update_item(**carrying(update, tallies))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def read(keys: Sequence[str]) -> dict[str, Figures]:
    """The figures of the day items named (eventually consistent; a missing item is absent)."""
    return {key: Figures.of(values) for key, values in counters.read(keys).items()}


# The figures function's record of a batch of the stream: the last record it counted.
_BATCH = "figures#batch#"
_BATCH_KEEP_SECONDS = 2 * 86_400  # a stream keeps its records 24 hours
_MOST = 98  # day items in one transaction, with the batch's record


def count(records: Sequence[Mapping[str, Any]]) -> int:
    """Add to the day items the tallies the leads' writes carried: `records`, one batch of the
    leads table's stream in order (a Lambda event's Records). The number of writes counted.

    Each write's tally is counted once however often the batch comes: the batch's record (keyed
    by its first record's sequence number: a failed batch comes again from the same record,
    whatever it holds after it) says the last record counted, and moves with each transaction
    of day items, on the condition that it is where this call found it.
    """
    if not records:
        return 0
    key = _BATCH + str(records[0]["dynamodb"]["SequenceNumber"])
    counted = 0
    while True:
        done = _counted_to(key)
        pending = [
            (int(record["dynamodb"]["SequenceNumber"]), tally)
            for record in records
            if done is None or int(record["dynamodb"]["SequenceNumber"]) > done
            if (tally := _carried(record["dynamodb"])) is not None
        ]
        if not pending:
            return counted
        group: list[Tally] = []
        last = done
        for sequence, tallies in pending:
            if group and len({t.key for t in [*group, *tallies]}) > _MOST:
                break
            group += tallies
            last = sequence
        taken = sum(1 for sequence, _ in pending if last is not None and sequence <= last)
        items = [_batch_moved(key, done, last), *(adding(t) for t in merged(group))]
        if transact(items) is None:
            counted += taken
        # Else another call moved the batch's record (an answer lost): read where it is.


def _carried(change: Mapping[str, Any]) -> list[Tally] | None:
    """The tallies a write carried (a stream record's images), None when it carried none: its
    lead's `tally` is new (another ID than before the write)."""
    new = change.get("NewImage", {}).get(TALLY)
    if new is None:
        return None
    old = change.get("OldImage", {}).get(TALLY)
    tally = from_item({TALLY: new})[TALLY]
    if old is not None and from_item({TALLY: old})[TALLY]["id"] == tally["id"]:
        return None
    return [Tally(k, Figures.of(v)) for k, v in tally["t"].items()]


def _counted_to(key: str) -> int | None:
    item = dynamodb().get_item(
        TableName=settings().counters_table, Key={"counter": {"S": key}}, ConsistentRead=True
    )
    last = item.get("Item", {}).get("last", {}).get("N")
    return None if last is None else int(last)


def _batch_moved(key: str, done: int | None, last: int | None) -> TransactWriteItemTypeDef:
    values: dict[str, Any] = {":last": last, ":expires": int(time.time()) + _BATCH_KEEP_SECONDS}
    condition = "attribute_not_exists(#last)"
    if done is not None:
        condition, values[":done"] = "#last = :done", done
    return {
        "Update": {
            "TableName": settings().counters_table,
            "Key": {"counter": {"S": key}},
            "UpdateExpression": "SET #last = :last, expires_at = :expires",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#last": "last"},
            "ExpressionAttributeValues": to_item(values),
        }
    }

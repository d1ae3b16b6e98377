"""The figures function's work: the day figures each write of a lead carried (its `tally`,
`pingpost.store.figures.riding`), added to the day items from the leads table's stream."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import ClientError

from pingpost.config import settings
from pingpost.store import dynamodb, to_item, transact
from pingpost.store.figures import TALLY, Figures, Tally, adding, ridden, size

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

# The figures function's record of a batch of the stream: the last record it counted.
_BATCH = "figures#batch#"
_BATCH_KEEP_SECONDS = 2 * 86_400  # a stream keeps its records 24 hours
_MOST = 98  # day items in one transaction, with the batch's record
# Figures one update of a day item adds at most: its expression stays well under DynamoDB's
# 4 KB (about 13 characters a figure). A write adds at most about 130 (an auction of 64 buyers).
_MOST_FIGURES = 200


class Counted(NamedTuple):
    """What a call of `count` did: the writes it counted, and the figures it could not add
    because their day item may not grow (DynamoDB's 400 KB an item), by key."""

    writes: int = 0
    dropped: Mapping[str, Figures] = MappingProxyType({})


def count(records: Sequence[Mapping[str, Any]]) -> Counted:
    """Add to the day items the tallies the leads' writes carried: `records`, one batch of the
    leads table's stream in order (a Lambda event's Records).

    Each write's tally is counted once however often the batch comes: the batch's record (keyed
    by its first record's sequence number) says the last record counted, and moves with each
    transaction of day items, on the condition that it is where this call found it. This holds
    while Lambda hands a failed batch again from the same record with at least the records it
    held (template.yaml: no bisecting, no partial responses, one batch of a shard at a time).
    A transaction takes the writes in order while their day items fit one (`_fits`). A day item
    that may not grow does not hold the batch back: its figures are left out (`Counted.dropped`,
    which the figures function reports) and the rest is counted.
    """
    if not records:
        return Counted()
    key = _BATCH + str(records[0]["dynamodb"]["SequenceNumber"])
    counted, dropped = 0, dict[str, Figures]()
    done = _counted_to(key)
    while True:
        pending = [
            (int(record["dynamodb"]["SequenceNumber"]), tally)
            for record in records
            if done is None or int(record["dynamodb"]["SequenceNumber"]) > done
            if (tally := _carried(record["dynamodb"])) is not None
        ]
        if not pending:
            return Counted(counted, dropped)
        group: dict[str, Figures] = {}
        last = done
        for sequence, tallies in pending:
            grown = dict(group)
            for one in tallies:
                grown[one.key] = grown.get(one.key, Figures()) + one.figures
            touched = {one.key for one in tallies}
            if group and not _fits(grown, touched):
                break
            group, last = grown, sequence
        taken = sum(1 for sequence, _ in pending if last is not None and sequence <= last)
        while True:
            adds = [adding(Tally(k, f)) for k, f in group.items()]
            items = [_batch_moved(key, done, last), *adds]
            try:
                refused = transact(items)
                break
            except ClientError as error:
                full = _full(error, list(group))
                if not full:
                    raise
                for name in full:  # counted without it, and said
                    dropped[name] = dropped.get(name, Figures()) + group.pop(name)
        if refused is None:
            counted += taken
            done = last
        else:  # another call moved the batch's record (an answer lost): read where it is
            done = _counted_to(key)


def _full(error: ClientError, keys: Sequence[str]) -> list[str]:
    """The day items (of `keys`, in the transaction's order after the batch's record) that a
    cancelled transaction could not grow."""
    reasons: Any = error.response.get("CancellationReasons", [])
    return [
        keys[n - 1]
        for n, reason in enumerate(reasons)
        if n > 0
        and reason.get("Code") == "ValidationError"
        and "size" in str(reason.get("Message", "")).lower()
    ]


def _fits(items: Mapping[str, Figures], touched: set[str]) -> bool:
    """Whether one transaction may add these figures to their day items (`touched`: those the
    last write added to)."""
    return len(items) <= _MOST and all(size(items[k]) <= _MOST_FIGURES for k in touched)


def _carried(change: Mapping[str, Any]) -> list[Tally] | None:
    """The tallies a write carried (a stream record's images), None when it carried none: its
    lead's `tally` is new (another ID than before the write)."""
    new = change.get("NewImage", {}).get(TALLY, {}).get("S")
    if new is None:
        return None
    ident, tallies = ridden(new)
    old = change.get("OldImage", {}).get(TALLY, {}).get("S")
    if old is not None and old.split(" ", 1)[0] == ident:
        return None
    return tallies


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

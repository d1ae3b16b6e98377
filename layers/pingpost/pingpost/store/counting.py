"""The figures function's work: the day figures each write of a lead carried (its `tally`,
`pingpost.store.figures.riding`), added to the day items from the leads table's stream."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pingpost.config import settings
from pingpost.store import dynamodb, to_item, transact
from pingpost.store.figures import TALLY, Tally, adding, merged, ridden

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

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
    done = _counted_to(key)
    while True:
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
            done = last
        else:  # another call moved the batch's record (an answer lost): read where it is
            done = _counted_to(key)


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

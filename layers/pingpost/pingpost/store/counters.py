"""The counters table: lead IDs, handed out in blocks so no item is written on every ping,
the per-second request counts of vendors with a rate limit, and items read by key (caps' and
day figures' counters)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from pingpost.config import settings
from pingpost.store import dynamodb, from_item

LEAD_ID = "lead_id"


class LeadIds:
    """Unique lead ID numbers for this container: one counter write per block of IDs."""

    def __init__(self, block: int | None = None) -> None:
        self._size = block
        self._lock = threading.Lock()
        self._next = 0
        self._end = 0

    def next(self) -> int:
        """A lead ID no other request anywhere has been given."""
        with self._lock:
            if self._next >= self._end:
                block = self._size or settings().lead_id_block
                last = self._reserve(block)
                self._next, self._end = last - block + 1, last + 1
            lead_id = self._next
            self._next += 1
            return lead_id

    def _reserve(self, block: int) -> int:
        # ADD is atomic: concurrent containers each get a different block.
        response = dynamodb().update_item(
            TableName=settings().counters_table,
            Key={"counter": {"S": LEAD_ID}},
            UpdateExpression="ADD #v :block",
            ExpressionAttributeNames={"#v": "value"},
            ExpressionAttributeValues={":block": {"N": str(block)}},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["value"]["N"])


lead_ids = LeadIds()


# The second in which each vendor was last found over its limit, in this container: its
# further requests in that second are refused without writing to the counter again.
_full: dict[str, int] = {}
_THROTTLED = ("ProvisionedThroughputExceededException", "ThrottlingException")


def take(vendor_id: str, limit: int, now: float | None = None) -> bool:
    """Count one request of a vendor in the current second; False once `limit` are counted.

    One conditional write on the second's counter, so every container shares the count; a
    counter DynamoDB throttles (a flood on one item) counts as full.
    """
    second = int(time.time() if now is None else now)
    if _full.get(vendor_id) == second:
        return False
    try:
        dynamodb().update_item(
            TableName=settings().counters_table,
            Key={"counter": {"S": f"rate#{vendor_id}#{second}"}},
            UpdateExpression="ADD #n :one SET expires_at = :expires",
            ConditionExpression="attribute_not_exists(#n) OR #n < :limit",
            ExpressionAttributeNames={"#n": "requests"},
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":limit": {"N": str(limit)},
                ":expires": {"N": str(second + 60)},
            },
        )
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code == "ConditionalCheckFailedException" or code in _THROTTLED:
            _full[vendor_id] = second
            return False
        raise
    return True


def read(keys: Sequence[str], *, consistent: bool = False) -> dict[str, dict[str, Any]]:
    """The items of the counters named, by name, without it (eventually consistent unless
    `consistent`; a missing item is absent). BatchGetItem, 100 keys a call, unprocessed keys
    asked again."""
    table = settings().counters_table
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), 100):
        chunk = [{"counter": {"S": k}} for k in keys[start : start + 100]]
        pending: Any = {table: {"Keys": chunk, "ConsistentRead": consistent}}
        while pending:
            response = dynamodb().batch_get_item(RequestItems=pending)
            for item in response.get("Responses", {}).get(table, []):
                values = from_item(item)
                out[str(values.pop("counter"))] = values
            pending = response.get("UnprocessedKeys") or None
    return out

"""The delivery of each sale, kept on its lead: queued -> sending -> delivered | failed.

A worker takes a delivery with a lease (a conditional write), so two workers never send the
same sale at once; a worker that dies holding it loses the lease when it runs out.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from botocore.exceptions import ClientError

from pingpost.config import settings
from pingpost.models import POSTING
from pingpost.store import dynamodb, figures, from_item, to_item
from pingpost.store.figures import TALLY, Tally

QUEUED, SENDING, DELIVERED, FAILED = "queued", "sending", "delivered", "failed"
# A sale held while its buyer is posted (it won by its bid): never queued or sent from here;
# then delivered (the buyer accepted) or RELEASED (it did not, or its post died): not sold, and
# never posted again.
RESERVED, RELEASED = "reserved", "released"
STARTED, DONE, BUSY, MISSING = "started", "done", "busy", "missing"
OUTBOX_SHARDS = 8


def outbox_shard(lead_id: int) -> str:
    """The outbox partition of a lead (spread so that no index partition runs hot)."""
    return f"pending#{lead_id % OUTBOX_SHARDS}"


def _failed_condition(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _key(lead_id: int) -> dict[str, Any]:
    return {"lead_id": {"N": str(lead_id)}}


def state(lead_id: int, partner_id: int) -> dict[str, Any] | None:
    """The delivery record of one sale, or None."""
    response = dynamodb().get_item(
        TableName=settings().leads_table,
        Key=_key(lead_id),
        ProjectionExpression="deliveries.#p",
        ExpressionAttributeNames={"#p": str(partner_id)},
        ConsistentRead=True,
    )
    deliveries = from_item(response.get("Item", {})).get("deliveries", {})
    record = deliveries.get(str(partner_id))
    return dict(record) if record is not None else None


def begin(lead_id: int, partner_id: int, now_ms: int, lease_ms: int) -> str:
    """Take a delivery to send it: STARTED, or DONE (nothing to do), BUSY (leased), MISSING."""
    try:
        dynamodb().update_item(
            TableName=settings().leads_table,
            Key=_key(lead_id),
            UpdateExpression=(
                "SET deliveries.#p.#st = :sending, deliveries.#p.lease_until = :lease"
                " ADD deliveries.#p.attempts :one"
            ),
            ConditionExpression=(
                "deliveries.#p.#st = :queued"
                " OR (deliveries.#p.#st = :sending AND deliveries.#p.lease_until < :now)"
            ),
            ExpressionAttributeNames={"#p": str(partner_id), "#st": "state"},
            ExpressionAttributeValues=to_item(
                {
                    ":sending": SENDING,
                    ":queued": QUEUED,
                    ":lease": now_ms + lease_ms,
                    ":now": now_ms,
                    ":one": 1,
                }
            ),
        )
    except ClientError as error:
        if not _failed_condition(error):
            raise
        record = state(lead_id, partner_id)
        if record is None:
            return MISSING
        return BUSY if record.get("state") == SENDING else DONE
    return STARTED


def settle(
    lead_id: int,
    partner_id: int,
    outcome: str,
    detail: str,
    now_ms: int,
    tallies: Sequence[Tally] = (),
) -> bool:
    """Record how an attempt ended (DELIVERED, QUEUED again to retry, or FAILED for good) while
    holding it, with `tallies` (the partner's day figures) if it is recorded."""
    return _set(lead_id, partner_id, outcome, detail, now_ms, "=", SENDING, tallies=tallies)


def park(
    lead_id: int, partner_id: int, detail: str, now_ms: int, tallies: Sequence[Tally] = ()
) -> bool:
    """Mark a delivery FAILED for good, unless it was delivered, is FAILED already or a worker is
    sending it now; `tallies` are counted if it is marked."""
    return _set(
        lead_id, partner_id, FAILED, detail, now_ms, "<>", DELIVERED, unleased=True, tallies=tallies
    )


def _set(
    lead_id: int,
    partner_id: int,
    outcome: str,
    detail: str,
    now_ms: int,
    test: str,
    than: str,
    *,
    unleased: bool = False,
    tallies: Sequence[Tally] = (),
) -> bool:
    """Set the delivery's state if its current state is (=) or is not (<>) `than`.

    `unleased`: and only if no worker holds a lease on it that has not run out.
    """
    event = {"at": now_ms, "event": "delivery", "detail": f"partner {partner_id}: {detail}"}
    condition = f"attribute_exists(deliveries.#p) AND deliveries.#p.#st {test} :than"
    if unleased:
        # Parking: not while a worker's lease runs, and once (a second dead letter of the
        # sale parks nothing again, nor counts it twice).
        condition += (
            " AND (attribute_not_exists(deliveries.#p.lease_until)"
            " OR deliveries.#p.lease_until < :now) AND deliveries.#p.#st <> :outcome"
        )
    update = {
        "TableName": settings().leads_table,
        "Key": _key(lead_id),
        "UpdateExpression": (
            "SET deliveries.#p.#st = :outcome, deliveries.#p.detail = :detail,"
            " deliveries.#p.#at = :now,"
            " timeline = list_append(if_not_exists(timeline, :none), :event)"
            " REMOVE deliveries.#p.lease_until"
        ),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": {"#p": str(partner_id), "#st": "state", "#at": "at"},
        "ExpressionAttributeValues": to_item(
            {
                ":outcome": outcome,
                ":detail": detail,
                ":now": now_ms,
                ":event": [event],
                ":none": [],
                ":than": than,
            }
        ),
    }
    return figures.write(update, tallies)


def awaiting_queue(lead_id: int) -> set[int]:
    """The partners whose sale of this lead has no delivery message on the queue yet."""
    response = dynamodb().get_item(
        TableName=settings().leads_table,
        Key=_key(lead_id),
        ProjectionExpression="outbox_sales",
        ConsistentRead=True,
    )
    return {int(p) for p in from_item(response.get("Item", {})).get("outbox_sales", set())}


def clear_outbox(lead_id: int, partner_ids: Collection[int]) -> None:
    """These sales' messages are on the queue; the lead leaves the outbox once none waits and
    it is no longer being posted."""
    queued = {":queued": {"NS": [str(p) for p in set(partner_ids)]}}
    if partner_ids:
        # Mostly every sale awaiting its message was just queued: one write ends the outbox.
        if _leave_outbox(lead_id, "outbox_sales = :queued", ", outbox_sales", queued):
            return
        response = dynamodb().update_item(
            TableName=settings().leads_table,
            Key=_key(lead_id),
            UpdateExpression="DELETE outbox_sales :queued",
            ExpressionAttributeValues=queued,
            ReturnValues="UPDATED_NEW",
        )
        if "outbox_sales" in response.get("Attributes", {}):
            return  # another sale of this lead still waits for its message
    _leave_outbox(lead_id, "attribute_not_exists(outbox_sales)")


def _leave_outbox(
    lead_id: int, waiting: str, also: str = "", values: dict[str, Any] | None = None
) -> bool:
    """Take the lead out of the outbox if `waiting` holds and it is not being posted (a lead
    still being posted stays: the sweep ends it if its post died); False when it stays."""
    try:
        dynamodb().update_item(
            TableName=settings().leads_table,
            Key=_key(lead_id),
            # The sale's day figures rode on its write, which the stream has: not kept.
            UpdateExpression=f"REMOVE outbox, outbox_since, {TALLY}{also}",
            ConditionExpression=f"{waiting} AND #s <> :posting",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=(values or {}) | {":posting": {"S": POSTING}},
        )
    except ClientError as error:
        if not _failed_condition(error):
            raise
        return False
    return True


def in_outbox(older_than_ms: int) -> list[int]:
    """Leads in the outbox since before `older_than_ms` (their messages may have been lost)."""
    found: list[int] = []
    for shard in range(OUTBOX_SHARDS):
        pages = (
            dynamodb()
            .get_paginator("query")
            .paginate(
                TableName=settings().leads_table,
                IndexName="by_outbox",
                KeyConditionExpression="outbox = :shard AND outbox_since < :before",
                ExpressionAttributeValues={
                    ":shard": {"S": f"pending#{shard}"},
                    ":before": {"N": str(older_than_ms)},
                },
            )
        )
        found += [int(i["lead_id"]["N"]) for page in pages for i in page.get("Items", [])]
    return found


def failed() -> list[tuple[int, int, dict[str, Any]]]:
    """Every parked delivery: (lead ID, partner ID, record); an operator's scan."""
    pages = (
        dynamodb()
        .get_paginator("scan")
        .paginate(
            TableName=settings().leads_table,
            ProjectionExpression="lead_id, deliveries",
            FilterExpression="attribute_exists(deliveries)",
        )
    )
    out = []
    for page in pages:
        for item in page.get("Items", []):
            values = from_item(item)
            for partner, record in values.get("deliveries", {}).items():
                if record.get("state") == FAILED:
                    out.append((int(values["lead_id"]), int(partner), dict(record)))
    return sorted(out)

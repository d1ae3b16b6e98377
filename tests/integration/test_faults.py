"""One post, one truth: what a publisher is told matches what is stored, under AWS faults.

Faults are injected between the exchange and the embedded AWS endpoint (tests/faults.py):
a call fails before it is sent, or is applied and its answer lost.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.faults import fault
from tests.integration.test_delivery import buyer, deliver, receive, record, sell
from tests.integration.test_delivery import sales as sales  # noqa: PLC0414 (the fixture)
from tests.leads import complete


@pytest.fixture
def partner() -> Iterator[Any]:
    from pingpost.local.partner import DemoPartner

    with DemoPartner() as good:
        yield good


def dynamodb() -> Any:
    from pingpost.store import dynamodb

    return dynamodb()


def test_a_lead_being_posted_no_longer_carries_the_pings_expiry(sales: Any) -> None:
    # Regression: the claim kept the ping's TTL, so DynamoDB could delete a lead mid-post.
    from pingpost import exchange
    from pingpost.decoding import Request
    from pingpost.store import leads

    ping = exchange.submit(Request(complete("ping")))
    assert leads.get(ping.lead_id).expires_at is not None  # type: ignore[union-attr]
    assert leads.claim(ping.lead_id, "demo", "token", now_ms=1, stale_ms=1)
    assert leads.get(ping.lead_id).expires_at is None  # type: ignore[union-attr]


def test_parking_waits_for_a_worker_that_is_sending_the_delivery(sales: Any, partner: Any) -> None:
    # Regression: the last redrive parked a sale that a worker was sending at that moment.
    from pingpost import delivery, redrive
    from pingpost.config import settings
    from pingpost.store import deliveries
    from pingpost.store.queues import Delivery

    sales(buyer(971, partner.url))
    lead_id = sell()
    receive()
    # A worker holds the delivery's lease ...
    taken = deliveries.begin(lead_id, 971, delivery._now_ms(), lease_ms=60_000)
    assert taken == deliveries.STARTED
    # ... when its last dead letter comes up for parking
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["DEAD_LETTER_QUEUE_URL"],
        MessageBody=Delivery(lead_id, 971).body(),
        MessageAttributes={
            "redrives": {"DataType": "Number", "StringValue": str(settings().max_redrives)}
        },
    )
    assert redrive.run(5).parked == 0
    assert record(lead_id, 971)["state"] == "sending"
    # The worker's answer stands
    assert deliveries.settle(lead_id, 971, deliveries.DELIVERED, "HTTP 200", delivery._now_ms())
    assert record(lead_id, 971)["state"] == "delivered"


def test_a_lost_status_write_is_retried_before_the_message_is_acknowledged(
    sales: Any, partner: Any
) -> None:
    # Regression: a failed status update after the partner accepted made the sale look
    # undelivered, and it was sent again.
    sales(buyer(972, partner.url))
    lead_id = sell()
    messages = receive()
    settling = {"when": lambda params: "deliveries.#p.detail" in params.get("UpdateExpression", "")}
    with fault(dynamodb(), "UpdateItem", times=2, **settling) as failed:
        assert deliver(messages) == {"batchItemFailures": []}
    assert failed.hits == 2
    assert record(lead_id, 972)["state"] == "delivered"
    assert partner.accepted == {f"{lead_id}-972": 1}

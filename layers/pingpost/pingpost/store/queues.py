"""The SQS queues: delivery messages in, dead letters out."""

import json
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, NamedTuple

import boto3

from pingpost.config import settings
from pingpost.store import client_config

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

REDRIVES = "redrives"


@cache
def sqs() -> "SQSClient":
    """An SQS client for whatever endpoint the standard AWS environment names."""
    return boto3.client("sqs", config=client_config(25))


class Delivery(NamedTuple):
    """One delivery message: a sale to deliver, and how often it came back from dead letters."""

    lead_id: int
    partner_id: int
    redrives: int = 0

    def body(self) -> str:
        """The message body."""
        return json.dumps({"lead_id": self.lead_id, "partner_id": self.partner_id})

    @classmethod
    def parse(cls, body: str, redrives: str | None = None) -> "Delivery":
        """The delivery a message body names; ValueError if it names none."""
        values = json.loads(body)
        return cls(int(values["lead_id"]), int(values["partner_id"]), int(redrives or 0))


def enqueue(deliveries: Sequence[Delivery], delay_seconds: int = 0) -> list[Delivery]:
    """Put deliveries on the delivery queue; returns those SQS did not take."""
    refused: list[Delivery] = []
    for start in range(0, len(deliveries), 10):
        batch = deliveries[start : start + 10]
        response = sqs().send_message_batch(
            QueueUrl=settings().delivery_queue_url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": d.body(),
                    "DelaySeconds": delay_seconds,
                    "MessageAttributes": {
                        REDRIVES: {"DataType": "Number", "StringValue": str(d.redrives)}
                    },
                }
                for i, d in enumerate(batch)
            ],
        )
        refused += [batch[int(f["Id"])] for f in response.get("Failed", [])]
    return refused


class DeadLetter(NamedTuple):
    """A message the delivery queue gave up on."""

    receipt: str
    body: str
    redrives: str | None


def dead_letters(most: int = 10) -> list[DeadLetter]:
    """Up to `most` (at most 10) messages from the dead-letter queue, without waiting."""
    response = sqs().receive_message(
        QueueUrl=settings().dead_letter_queue_url,
        MaxNumberOfMessages=min(most, 10),
        WaitTimeSeconds=0,
        MessageAttributeNames=[REDRIVES],
    )
    letters = []
    for message in response.get("Messages", []):
        attribute = message.get("MessageAttributes", {}).get(REDRIVES)
        redrives = attribute.get("StringValue") if attribute else None
        letters.append(DeadLetter(message["ReceiptHandle"], message.get("Body", ""), redrives))
    return letters


def forget(letter: DeadLetter) -> None:
    """Delete a dead letter once it is redriven or parked."""
    sqs().delete_message(QueueUrl=settings().dead_letter_queue_url, ReceiptHandle=letter.receipt)

"""The leads table: every lead, its status, its sales and the answer it was given.

Status goes pinged -> posting -> sold | unsold (or straight to sold | unsold in full mode).
Every change is a conditional write, so two requests can never both sell a lead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from pingpost.config import settings
from pingpost.store import dynamodb, from_item, to_item

PINGED, POSTING, SOLD, UNSOLD = "pinged", "posting", "sold", "unsold"
DONE = (SOLD, UNSOLD)


@dataclass
class Lead:
    """A lead as stored: who sent it, what it holds and where it stands."""

    lead_id: int
    vendor_id: str
    status: str
    data: dict[str, str]
    cost: Decimal
    created_at: int  # epoch milliseconds
    answer: dict[str, Any]  # the latest answer (ping's, then post's), replayed on a repeat post
    extra: dict[str, str] = field(default_factory=dict)
    matches: list[dict[str, str]] = field(default_factory=list)  # the vendor's XML <Matches>
    sales: list[dict[str, Any]] = field(default_factory=list)
    test: bool = False
    expires_at: int | None = None  # epoch seconds; only while the lead waits for its post
    claim: str | None = None
    claimed_at: int | None = None  # epoch milliseconds

    def item(self) -> dict[str, Any]:
        """The DynamoDB item of this lead."""
        return to_item(self.__dict__)

    @classmethod
    def of(cls, item: dict[str, Any]) -> Lead:
        """The lead in a DynamoDB item."""
        values = from_item(item)
        for name in ("lead_id", "created_at", "expires_at", "claimed_at"):
            if values.get(name) is not None:
                values[name] = int(values[name])
        return cls(**values)


def _conditional_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def add(lead: Lead) -> None:
    """Store a new lead; its ID must be new."""
    dynamodb().put_item(
        TableName=settings().leads_table,
        Item=lead.item(),
        ConditionExpression="attribute_not_exists(lead_id)",
    )


def get(lead_id: int) -> Lead | None:
    """The lead with this ID, read consistently, or None."""
    response = dynamodb().get_item(
        TableName=settings().leads_table,
        Key={"lead_id": {"N": str(lead_id)}},
        ConsistentRead=True,
    )
    item = response.get("Item")
    return None if item is None else Lead.of(item)


def claim(lead_id: int, vendor_id: str, token: str, now_ms: int, stale_ms: int) -> bool:
    """Take the lead for one post; False when another post has it or it is already done."""
    try:
        dynamodb().update_item(
            TableName=settings().leads_table,
            Key={"lead_id": {"N": str(lead_id)}},
            UpdateExpression="SET #s = :posting, claim = :token, claimed_at = :now",
            ConditionExpression=(
                "vendor_id = :vendor AND (#s = :pinged OR (#s = :posting AND claimed_at < :stale))"
            ),
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":posting": {"S": POSTING},
                ":pinged": {"S": PINGED},
                ":token": {"S": token},
                ":now": {"N": str(now_ms)},
                ":stale": {"N": str(now_ms - stale_ms)},
                ":vendor": {"S": vendor_id},
            },
        )
    except ClientError as error:
        if _conditional_failed(error):
            return False
        raise
    return True


def finish(lead: Lead, token: str) -> bool:
    """Record a post's outcome (status, data, sales, answer) if this post still holds the claim."""
    try:
        dynamodb().update_item(
            TableName=settings().leads_table,
            Key={"lead_id": {"N": str(lead.lead_id)}},
            UpdateExpression=(
                "SET #s = :status, #d = :data, extra = :extra, sales = :sales, answer = :answer,"
                " matches = :matches REMOVE expires_at, claim, claimed_at"
            ),
            ConditionExpression="#s = :posting AND claim = :token",
            ExpressionAttributeNames={"#s": "status", "#d": "data"},
            ExpressionAttributeValues=to_item(
                {
                    ":status": lead.status,
                    ":data": lead.data,
                    ":extra": lead.extra,
                    ":sales": lead.sales,
                    ":answer": lead.answer,
                    ":matches": lead.matches,
                    ":posting": POSTING,
                    ":token": token,
                }
            ),
        )
    except ClientError as error:
        if _conditional_failed(error):
            return False
        raise
    return True

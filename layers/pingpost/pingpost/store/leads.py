"""The leads table: every lead, its status, its sales and the answer it was given.

Status goes pinged -> posting -> sold | unsold (or straight to sold | unsold in full mode).
Every change is a conditional write, so two requests can never both sell a lead.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
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
    sold_to: dict[str, Decimal] = field(default_factory=dict)  # partner ID -> price, per sale
    times_sold: int = 0
    # partner ID -> {"state": queued | sending | delivered | failed, "attempts", "detail", "at"}
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)
    # [partner ID, "matched" | "sold" | the first rule that excluded it], per partner considered
    decisions: list[list[Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)  # {"at": ms, "event", "detail"}
    test: bool = False
    # The consumer's consent and its evidence (pingpost.consent), when the lead carries any.
    consent: dict[str, Any] = field(default_factory=dict)
    expires_at: int | None = None  # epoch seconds; only while the lead waits for its post
    claim: str | None = None
    claimed_at: int | None = None  # epoch milliseconds

    @property
    def sales(self) -> list[dict[str, Any]]:
        """The sales of this lead, best price first."""
        ordered = sorted(self.sold_to.items(), key=lambda sale: (-sale[1], int(sale[0])))
        return [{"partner_id": int(partner), "price": price} for partner, price in ordered]

    def item(self) -> dict[str, Any]:
        """The DynamoDB item of this lead."""
        return to_item({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def of(cls, item: dict[str, Any]) -> Lead:
        """The lead in a DynamoDB item."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in from_item(item).items() if k in known}
        for name in ("lead_id", "created_at", "expires_at", "claimed_at", "times_sold"):
            if values.get(name) is not None:
                values[name] = int(values[name])
        values["decisions"] = [[int(p), verdict] for p, verdict in values.get("decisions", [])]
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
            UpdateExpression=(
                "SET #s = :posting, claim = :token, claimed_at = :now,"
                " sold_to = if_not_exists(sold_to, :none),"
                " deliveries = if_not_exists(deliveries, :none)"
                # The ping's expiry ends here: DynamoDB must not delete a lead being sold.
                " REMOVE expires_at"
            ),
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
                ":none": {"M": {}},
            },
        )
    except ClientError as error:
        if _conditional_failed(error):
            return False
        raise
    return True


def finish(lead: Lead, token: str) -> bool:
    """Record a post's outcome if this post still holds the claim; `lead.timeline` is appended."""
    try:
        dynamodb().update_item(
            TableName=settings().leads_table,
            Key={"lead_id": {"N": str(lead.lead_id)}},
            UpdateExpression=(
                "SET #s = :status, #d = :data, extra = :extra, answer = :answer,"
                " matches = :matches, decisions = :decisions, test = :test, consent = :consent,"
                " timeline = list_append(if_not_exists(timeline, :none), :timeline)"
                " REMOVE expires_at, claim, claimed_at"
            ),
            ConditionExpression="#s = :posting AND claim = :token",
            ExpressionAttributeNames={"#s": "status", "#d": "data"},
            ExpressionAttributeValues=to_item(
                {
                    ":status": lead.status,
                    ":data": lead.data,
                    ":extra": lead.extra,
                    ":answer": lead.answer,
                    ":matches": lead.matches,
                    ":decisions": lead.decisions,
                    ":test": lead.test,
                    ":consent": lead.consent,
                    ":timeline": lead.timeline,
                    ":none": [],
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

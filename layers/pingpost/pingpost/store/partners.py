"""The partners table: buyers, kept in the container and refreshed by what changed.

A container reads every partner once (a scan). After that, at most every `cache_seconds`, it
reads the partners' version (one item of the counters table): when it is the version the
container has, nothing else is read; when it moved, the container queries the `by_change`
index for the partners written since and applies them. Every write of a partner gives it the
next version, in one transaction with the version item (conditional on the version before), so
no version is skipped or given twice. A partner is never deleted by the exchange: pausing one
writes it `active: false`.

A delivery looks its partner up by id (one read, kept `cache_seconds`), never the whole table.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from pingpost.config import settings
from pingpost.matching import PartnerSet
from pingpost.models import Partner
from pingpost.store import Expiring, dynamodb, from_item, secrets, to_item

VERSION = "partners#version"  # the counters table's item counting partner writes
CHANGES = "changes"  # the by_change index's one partition: every versioned partner is in it
_ATTEMPTS = 20


@dataclass(frozen=True)
class _Copy:
    version: int
    partners: dict[int, Partner]
    active: PartnerSet


class _Kept:
    """This container's copy of the partners, and when it last looked at their version."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.copy: _Copy | None = None
        self.checked = 0.0  # time.monotonic()


_kept = _Kept()
_one: Expiring[int, Partner | None] = Expiring(lambda: settings().cache_seconds)


def current() -> PartnerSet:
    """The active partners, indexed for matching; this container's copy, refreshed by change."""
    return _fresh().active


def _fresh() -> _Copy:
    with _kept.lock:
        now = time.monotonic()
        copy = _kept.copy
        if copy is not None and now - _kept.checked < settings().cache_seconds:
            return copy
        version = _version()
        if copy is None or version < copy.version:
            copy = _made(version, {p.id: p for p in all_partners()})
        elif version > copy.version:
            copy = _changed(copy, version)
        _kept.copy, _kept.checked = copy, now
        return copy


def _made(version: int, partners: dict[int, Partner]) -> _Copy:
    return _Copy(version, partners, PartnerSet(p for p in partners.values() if p.active))


def _changed(copy: _Copy, version: int) -> _Copy:
    """The copy with the partners written since its version. The index is eventually
    consistent: until it shows every write up to `version`, the copy keeps its version, so the
    next look asks again for all of them (applying a partner twice changes nothing)."""
    pages = (
        dynamodb()
        .get_paginator("query")
        .paginate(
            TableName=settings().partners_table,
            IndexName="by_change",
            KeyConditionExpression="changes = :all AND change > :seen",
            ExpressionAttributeValues={
                ":all": {"S": CHANGES},
                ":seen": {"N": str(copy.version)},
            },
        )
    )
    items = [from_item(item) for page in pages for item in page.get("Items", [])]
    if not items:
        return copy
    newest = max(int(item["change"]) for item in items)
    partners = copy.partners | {p.id: p for p in map(_partner, items)}
    return _made(version if newest >= version else copy.version, partners)


def _version() -> int:
    item = dynamodb().get_item(
        TableName=settings().counters_table,
        Key={"counter": {"S": VERSION}},
        ConsistentRead=True,
    )
    return int(item.get("Item", {}).get("version", {}).get("N", 0))


def all_partners() -> list[Partner]:
    """Every partner, read from the table."""
    pages = dynamodb().get_paginator("scan").paginate(TableName=settings().partners_table)
    return [_partner(from_item(item)) for page in pages for item in page.get("Items", [])]


def _partner(item: dict[str, Any]) -> Partner:
    item["id"] = item.pop("partner_id")
    for kept in ("changes", "change"):
        item.pop(kept, None)
    return Partner.model_validate(item)


def put(partner: Partner) -> None:
    """Create or replace a partner; its header values go to SSM, their names to the table."""
    item = partner.model_dump(mode="python")
    sent = item["delivery"].pop("headers")
    if sent:
        secrets.put(partner.id, sent)
        item["delivery"]["secret_headers"] = sorted(sent)
    elif not partner.delivery.secret_headers:
        secrets.forget(partner.id)  # headers removed: their values go too
    item["partner_id"] = item.pop("id")
    item["changes"] = CHANGES
    for attempt in range(_ATTEMPTS):
        version = _version()
        item["change"] = version + 1
        try:
            dynamodb().transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": settings().partners_table, "Item": to_item(item)}},
                    {
                        "Update": {
                            "TableName": settings().counters_table,
                            "Key": {"counter": {"S": VERSION}},
                            "UpdateExpression": "SET version = :next",
                            "ConditionExpression": (
                                "attribute_not_exists(version) OR version = :seen"
                            ),
                            "ExpressionAttributeValues": {
                                ":next": {"N": str(version + 1)},
                                ":seen": {"N": str(version)},
                            },
                        }
                    },
                ]
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                # Another write took this version: take the next, after a while at random.
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
                continue
            raise
        with _kept.lock:
            _kept.checked = 0.0  # this container looks at the version at its next use
        _one.forget(partner.id)
        return
    raise RuntimeError(f"partner {partner.id} not written: other writes took every version")


def by_id(partner_id: int) -> Partner | None:
    """Any partner, active or not (a sale is delivered even if its buyer was paused since)."""

    def load() -> Partner | None:
        item = dynamodb().get_item(
            TableName=settings().partners_table,
            Key={"partner_id": {"N": str(partner_id)}},
            ConsistentRead=True,
        )
        return _partner(from_item(item["Item"])) if "Item" in item else None

    return _one.get(partner_id, load)


def forget() -> None:
    """Drop this container's copies: the next look reads the partners afresh."""
    with _kept.lock:
        _kept.copy = None
    _one.clear()

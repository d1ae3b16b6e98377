"""The partners table: buyers, kept in the container and refreshed by what changed.

A container reads every partner once (a strongly consistent scan). After that, at most every
`cache_seconds`, it reads the partners' version item (in the counters table): when its version
is the one the container has, nothing else is read; when it moved, the item's log names the
partners of its last `LOG` writes, and the container reads those partners again (strongly
consistent, so it gets them as they are now, whatever the order their writes landed in). A
container further behind than the log reaches reads every partner again. Every write of a
partner takes the next version and adds itself to the log in one transaction with the partner
(conditional on the version before), so no version is skipped or given twice. A partner is
never deleted by the exchange: pausing one writes it `active: false`.

A delivery looks its partner up by id (one read, kept `cache_seconds`), never the whole table.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from pingpost.config import settings
from pingpost.fields import LEAD_TYPE
from pingpost.models import STORED, Partner
from pingpost.store import Expiring, dynamodb, from_item, secrets, to_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import PutTypeDef

VERSION = "partners#version"  # the counters table's item counting partner writes
LOG = 100  # the version item names the partners of this many latest writes
_ATTEMPTS = 20


@dataclass(frozen=True, eq=False)
class Roster:
    """Every partner, active or not, by id, as of a version of the partners table.

    A container's copy: the same object until a write moves the version, so whatever is built
    from it (the matching index) can be kept as long as it is the current one.
    """

    version: int
    partners: Mapping[int, Partner]


class _Kept:
    """This container's copy of the partners, and when it last looked at their version."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.copy: Roster | None = None
        self.checked = 0.0  # time.monotonic()


_kept = _Kept()
_one: Expiring[int, Partner | None] = Expiring(lambda: settings().cache_seconds)


def current() -> Roster:
    """Every partner: this container's copy, refreshed by what changed."""
    with _kept.lock:
        now = time.monotonic()
        copy = _kept.copy
        if copy is not None and now - _kept.checked < settings().cache_seconds:
            return copy
        version, log = _version()
        if copy is None or version < copy.version or not _reaches(log, copy.version, version):
            copy = Roster(version, MappingProxyType({p.id: p for p in all_partners()}))
        elif version > copy.version:
            copy = _changed(copy, version, {p for change, p in log if change > copy.version})
        _kept.copy, _kept.checked = copy, now
        return copy


def _reaches(log: list[tuple[int, int]], seen: int, version: int) -> bool:
    """Whether the log names every write after version `seen` (up to `version`)."""
    return version == seen or (bool(log) and min(change for change, _ in log) <= seen + 1)


def _changed(copy: Roster, version: int, written: set[int]) -> Roster:
    """The copy with the partners written since its version, read as they are now."""
    table = settings().partners_table
    found: dict[int, Partner] = {}
    keys = [{"partner_id": {"N": str(p)}} for p in sorted(written)]
    pending: Any = {table: {"Keys": keys, "ConsistentRead": True}}
    while pending:
        response = dynamodb().batch_get_item(RequestItems=pending)
        for item in response.get("Responses", {}).get(table, []):
            partner = stored(item)
            found[partner.id] = partner
        pending = response.get("UnprocessedKeys") or None
    kept = {i: p for i, p in copy.partners.items() if i not in written}
    return Roster(version, MappingProxyType(kept | found))


def _version() -> tuple[int, list[tuple[int, int]]]:
    """The partners' version, and its log: (version, partner ID) of the latest writes."""
    item = dynamodb().get_item(
        TableName=settings().counters_table,
        Key={"counter": {"S": VERSION}},
        ConsistentRead=True,
    )
    values = from_item(item.get("Item", {}))
    log = [(int(change), int(partner)) for change, partner in values.get("log", [])]
    return int(values.get("version", 0)), log


def all_partners() -> list[Partner]:
    """Every partner, read from the table as it is now (a strongly consistent scan)."""
    pages = (
        dynamodb()
        .get_paginator("scan")
        .paginate(TableName=settings().partners_table, ConsistentRead=True)
    )
    return [stored(item) for page in pages for item in page.get("Items", [])]


def stored(raw: Mapping[str, Any]) -> Partner:
    """A partner from its item in the table (DynamoDB's typed attribute values)."""
    item = from_item(raw)
    item["id"] = item.pop("partner_id")
    item.pop("change", None)
    return Partner.model_validate(item, context=STORED)


class PartnerChanged(Exception):
    """A conditional write found the partner otherwise than its writer expected: there is one of
    its ID already (adding), or another write came since it was read (changing)."""


def read(partner_id: int) -> tuple[Partner, int] | None:
    """A partner as stored now, with the version that wrote it (for `put(written=...)`)."""
    item = (
        dynamodb()
        .get_item(
            TableName=settings().partners_table,
            Key={"partner_id": {"N": str(partner_id)}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    if item is None:
        return None
    return stored(item), int(item.get("change", {}).get("N", 0))


def compact(item: dict[str, Any]) -> dict[str, Any]:
    """A partner's item without what its defaults say: a partner that does not bid stores
    nothing of bidding, one of Home Improvement's alone no lead types, one without field
    filters none (every container holds every partner: each attribute is memory and read units
    a thousand times over)."""
    for request in ("bid", "post"):
        if item.get(request, False) is None:
            del item[request]
    if item.get("lead_types") == [LEAD_TYPE]:
        del item["lead_types"]
    if not item.get("filters", {}).get("fields", True):
        del item["filters"]["fields"]
    return item


def put(partner: Partner, *, new: bool = False, written: int | None = None) -> None:
    """Create or replace a partner; its header values go to SSM, their names to the table.

    `new`: only if there is no partner of its ID; `written`: only if the version that wrote the
    partner is still that one (as `read` gave it). Either raises PartnerChanged otherwise.
    """
    if new or written is not None:
        found = read(partner.id)
        if (found is not None) if new else (found is None or found[1] != written):
            # Checked before the secrets are written too: the transaction checks it again.
            raise PartnerChanged(partner.id)
    item = partner.model_dump(mode="python")
    gone = []
    for request in secrets.PARAMETERS:  # delivery, bid, post
        endpoint = getattr(partner, request)
        sent = item[request].pop("headers") if endpoint is not None else {}
        if sent:
            secrets.put(partner.id, sent, request)
            item[request]["secret_headers"] = sorted(sent)
        elif endpoint is None or not endpoint.secret_headers:
            gone.append(request)  # headers removed: their values go too
    secrets.forget(partner.id, gone)
    item = compact(item)
    item["partner_id"] = item.pop("id")
    for attempt in range(_ATTEMPTS):
        version, log = _version()
        item["change"] = version + 1  # the version that wrote it, for the reader of the table
        logged = [*log, (version + 1, partner.id)][-LOG:]
        try:
            dynamodb().transact_write_items(
                TransactItems=[
                    {"Put": _put(item, new, written)},
                    {
                        "Update": {
                            "TableName": settings().counters_table,
                            "Key": {"counter": {"S": VERSION}},
                            "UpdateExpression": "SET version = :next, #log = :log",
                            "ConditionExpression": (
                                "attribute_not_exists(version) OR version = :seen"
                            ),
                            "ExpressionAttributeNames": {"#log": "log"},
                            "ExpressionAttributeValues": to_item(
                                {
                                    ":next": version + 1,
                                    ":seen": version,
                                    ":log": [list(entry) for entry in logged],
                                }
                            ),
                        }
                    },
                ]
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                reasons = error.response.get("CancellationReasons") or [{}]
                if reasons[0].get("Code") == "ConditionalCheckFailed":
                    raise PartnerChanged(partner.id) from None
                # Another write took this version: take the next, after a while at random.
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
                continue
            raise
        with _kept.lock:
            _kept.checked = 0.0  # this container looks at the version at its next use
        _one.forget(partner.id)
        return
    raise RuntimeError(f"partner {partner.id} not written: other writes took every version")


def _put(item: dict[str, Any], new: bool, written: int | None) -> PutTypeDef:
    """The transaction's Put of a partner, with its condition when it has one."""
    put: PutTypeDef = {"TableName": settings().partners_table, "Item": to_item(item)}
    if new:
        put["ConditionExpression"] = "attribute_not_exists(partner_id)"
    elif written is not None:
        put["ConditionExpression"] = "change = :written"
        put["ExpressionAttributeValues"] = to_item({":written": written})
    return put


def by_id(partner_id: int) -> Partner | None:
    """Any partner, active or not (a sale is delivered even if its buyer was paused since)."""

    def load() -> Partner | None:
        found = read(partner_id)
        return None if found is None else found[0]

    return _one.get(partner_id, load)


def forget() -> None:
    """Drop this container's copies: the next look reads the partners afresh."""
    with _kept.lock:
        _kept.copy = None
    _one.clear()

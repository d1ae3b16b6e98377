"""The vendors table: publishers, found by the hash of their Key."""

from __future__ import annotations

import hmac

from pingpost.config import settings
from pingpost.models import Vendor, key_hash
from pingpost.store import Expiring, dynamodb, from_item, to_item

_cache: Expiring[str, Vendor | None] = Expiring(lambda: settings().cache_seconds)


def by_key(key: str) -> Vendor | None:
    """The vendor whose Key this is, or None (compared in constant time)."""
    wanted = key_hash(key)
    vendor = _cache.get(wanted, lambda: _query(wanted))
    if vendor is None or not hmac.compare_digest(vendor.key_hash, wanted):
        return None
    return vendor


def _query(hashed: str) -> Vendor | None:
    response = dynamodb().query(
        TableName=settings().vendors_table,
        IndexName="by_key_hash",
        KeyConditionExpression="key_hash = :h",
        ExpressionAttributeValues={":h": {"S": hashed}},
        Limit=2,
    )
    items = response.get("Items", [])
    if len(items) != 1:
        return None  # unknown, or (misconfigured) shared by two vendors: never guess
    return _vendor(from_item(items[0]))


def _vendor(item: dict[str, object]) -> Vendor:
    item["id"] = item.pop("vendor_id")
    return Vendor.model_validate(item)


def put(vendor: Vendor) -> None:
    """Create or replace a vendor."""
    item = vendor.model_dump()
    item["vendor_id"] = item.pop("id")
    dynamodb().put_item(TableName=settings().vendors_table, Item=to_item(item))
    _cache.clear()


def all_vendors() -> list[Vendor]:
    """Every vendor (for the operator's tools; not on the request path)."""
    pages = dynamodb().get_paginator("scan").paginate(TableName=settings().vendors_table)
    return [_vendor(from_item(item)) for page in pages for item in page.get("Items", [])]

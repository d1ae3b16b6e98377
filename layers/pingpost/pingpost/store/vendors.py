"""The vendors table: publishers, found by the hash of their Key (or of their next Key, while
a rotation gives them two)."""

from __future__ import annotations

import hmac

from pingpost.config import settings
from pingpost.models import STORED, Vendor, key_hash
from pingpost.store import Expiring, dynamodb, from_item, to_item

_cache: Expiring[str, Vendor | None] = Expiring(lambda: settings().cache_seconds)


def by_key(key: str) -> Vendor | None:
    """The vendor whose Key this is, or None (compared in constant time)."""
    wanted = key_hash(key)
    vendor = _cache.get(wanted, lambda: _query(wanted))
    if vendor is None:
        return None
    keys = (vendor.key_hash, vendor.next_key_hash or "")
    # Both compared, whichever matches: the time taken does not tell which Key it was.
    matches = [hmac.compare_digest(known, wanted) for known in keys]
    return vendor if any(matches) else None


def _query(hashed: str) -> Vendor | None:
    # The next Key is looked for only when no vendor has it as its Key (during a rotation).
    for attribute in ("key_hash", "next_key_hash"):
        response = dynamodb().query(
            TableName=settings().vendors_table,
            IndexName=f"by_{attribute}",
            KeyConditionExpression=f"{attribute} = :h",
            ExpressionAttributeValues={":h": {"S": hashed}},
            Limit=2,
        )
        items = response.get("Items", [])
        if items:
            # Shared by two vendors (misconfigured): never guess.
            return _vendor(from_item(items[0])) if len(items) == 1 else None
    return None


def _vendor(item: dict[str, object]) -> Vendor:
    item["id"] = item.pop("vendor_id")
    return Vendor.model_validate(item, context=STORED)


def put(vendor: Vendor) -> None:
    """Create or replace a vendor."""
    item = vendor.model_dump()
    if item["lead_types"] is None:
        del item["lead_types"]  # every type, the default: stored as before lead types
    item["vendor_id"] = item.pop("id")
    dynamodb().put_item(TableName=settings().vendors_table, Item=to_item(item))
    _cache.clear()


def all_vendors() -> list[Vendor]:
    """Every vendor (for the operator's tools; not on the request path)."""
    pages = dynamodb().get_paginator("scan").paginate(TableName=settings().vendors_table)
    return [_vendor(from_item(item)) for page in pages for item in page.get("Items", [])]

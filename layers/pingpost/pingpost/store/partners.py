"""The partners table: buyers, read whole and kept in the container for a few seconds."""

from __future__ import annotations

from pingpost.config import settings
from pingpost.matching import PartnerSet
from pingpost.models import Partner
from pingpost.store import Expiring, dynamodb, from_item, secrets, to_item

_cache: Expiring[str, PartnerSet] = Expiring(lambda: settings().cache_seconds)
_everyone: Expiring[str, dict[int, Partner]] = Expiring(lambda: settings().cache_seconds)


def current() -> PartnerSet:
    """The active partners, indexed for matching; this container's copy while it is fresh."""
    return _cache.get("active", lambda: PartnerSet(p for p in all_partners() if p.active))


def all_partners() -> list[Partner]:
    """Every partner, read from the table."""
    pages = dynamodb().get_paginator("scan").paginate(TableName=settings().partners_table)
    return [_partner(from_item(item)) for page in pages for item in page.get("Items", [])]


def _partner(item: dict[str, object]) -> Partner:
    item["id"] = item.pop("partner_id")
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
    dynamodb().put_item(TableName=settings().partners_table, Item=to_item(item))
    _cache.clear()
    _everyone.clear()


def by_id(partner_id: int) -> Partner | None:
    """Any partner, active or not (a sale is delivered even if its buyer was paused since)."""
    return _everyone.get("all", lambda: {p.id: p for p in all_partners()}).get(partner_id)

"""The partners' index: the counters table's items `partners#in#<lead type>#<state>#<product>`
naming the active partners a lead of that type, state and product may meet (`*`: any). A
partner's write files it (`placings`, `moves`); a lead reads its neighbourhood's items
(`neighbourhood`); pingpost.store.partners does both."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from pingpost.config import settings
from pingpost.fields import LEAD_TYPE
from pingpost.matching import Criteria
from pingpost.models import Partner

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

# The counters table's index items: INDEX + "<type>#<state>#<product>#<shard>".
INDEX = "partners#in#"
ANY = "*"
# Each place is spread over this many items by partner ID, so that no item nears DynamoDB's
# 400 KB (about 80,000 IDs) when most partners share a place (buyers of a whole country), and a
# write rewrites a quarter of it; a lead reads every shard of its places in the same call.
SHARDS = 4
# A partner is filed in at most this many index items: its old and new places, the partner and
# the version item fit in one transaction (DynamoDB takes 100 items).
_PLACES = 48
_PAIRS = 16  # states times products filed pair by pair; more are filed by state or by product


def _place(kind: str, state: str, product: str, shard: int | None = None) -> str:
    return f"{INDEX}{kind}#{state}#{product}" + ("" if shard is None else f"#{shard}")


def placings(partner: Partner) -> frozenset[str]:
    """The index items a partner is filed in (none when it is paused): for each lead type it
    buys, its states (or any) by its products (Home Improvement's; or any), coarser when they
    are many. Every lead the partner's type, state and product filters admit reads one of them
    (`neighbourhood`)."""
    if not partner.active:
        return frozenset()
    shard = partner.id % SHARDS
    places: list[str] = []
    for kind in partner.lead_types:
        states = sorted(partner.filters.states) or [ANY]
        products = (sorted(partner.filters.products) if kind == LEAD_TYPE else []) or [ANY]
        if len(states) * len(products) > _PAIRS:
            if len(states) <= _PAIRS:
                products = [ANY]
            elif len(products) <= _PAIRS:
                states = [ANY]
            else:
                states = products = [ANY]
        places += (_place(kind, s, p, shard) for s, p in itertools.product(states, products))
    if len(places) > _PLACES:
        places = [_place(kind, ANY, ANY, shard) for kind in partner.lead_types]
    if len(places) > _PLACES:
        places = [_place(ANY, ANY, ANY)]  # more than 48 lead types: one item, not sharded
    return frozenset(places)


def neighbourhood(lead: Criteria) -> tuple[str, ...]:
    """The index items naming every partner whose type, state and product filters may admit
    `lead` (and others: the matching that follows applies every filter)."""
    kind = lead.lead_type
    states = (ANY,) if lead.state in (None, ANY) else (lead.state, ANY)
    product = lead.product if kind == LEAD_TYPE else None
    products = (ANY,) if product in (None, ANY) else (product, ANY)
    pairs = itertools.product(states, products, range(SHARDS))
    return (*(_place(kind, str(s), str(p), n) for s, p, n in pairs), _place(ANY, ANY, ANY))


def moves(
    partner_id: int, was: frozenset[str], now: frozenset[str]
) -> list[TransactWriteItemTypeDef]:
    """The index items a partner leaves and joins."""
    return [
        {
            "Update": {
                "TableName": settings().counters_table,
                "Key": {"counter": {"S": key}},
                "UpdateExpression": f"{verb} ids :id",
                "ExpressionAttributeValues": {":id": {"NS": [str(partner_id)]}},
            }
        }
        # Every place it is in now, not only the new ones: one wrong (a partner edited by hand)
        # is put right by its next write.
        for verb, keys in (("DELETE", was - now), ("ADD", now))
        for key in sorted(keys)
    ]

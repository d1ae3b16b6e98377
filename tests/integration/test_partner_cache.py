"""A container keeps its partners and reads only what changed (store/partners.py)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import boto3
import pytest

from tests.conftest import DEMO_SEED


@pytest.fixture
def demo(aws: str) -> Iterator[None]:
    from pingpost.store import partners
    from pingpost_local import seed

    seed.apply(seed.load(DEMO_SEED))
    partners.forget()
    yield
    seed.apply(seed.load(DEMO_SEED))


@contextmanager
def counting() -> Iterator[Counter[str]]:
    """The DynamoDB operations this process's product client makes inside the block."""
    from pingpost.store import dynamodb

    made: Counter[str] = Counter()

    def hook(model: Any, **_: Any) -> None:
        made[model.name] += 1

    dynamodb().meta.events.register("before-call.dynamodb", hook, unique_id="counting")
    try:
        yield made
    finally:
        dynamodb().meta.events.unregister("before-call.dynamodb", unique_id="counting")


def _partner(partner_id: int) -> Any:
    from pingpost.store import partners

    (found,) = [p for p in partners.current().all() if p.id == partner_id]
    return found


def test_a_new_container_reads_every_partner_then_only_the_version(demo: None) -> None:
    from pingpost.store import partners

    with counting() as first:
        partners.current()
    assert first == {"GetItem": 1, "Scan": 1}
    with counting() as again:
        partners.current()  # the tests keep nothing: every use looks at the version
    assert again == {"GetItem": 1}


def test_a_partner_written_is_read_alone_and_applied(demo: None) -> None:
    from pingpost.store import partners

    before = _partner(142)
    partners.put(before.model_copy(update={"price": before.price + 1}))
    with counting() as made:
        after = _partner(142)
    assert made == {"GetItem": 1, "Query": 1}
    assert after.price == before.price + 1
    # A partner paused leaves the partners that match, and comes back when resumed.
    partners.put(after.model_copy(update={"active": False}))
    assert 142 not in {p.id for p in partners.current().all()}
    partners.put(after.model_copy(update={"active": True}))
    assert 142 in {p.id for p in partners.current().all()}


def test_partners_written_at_once_each_take_their_own_version(demo: None) -> None:
    from pingpost.store import partners

    partners.current()
    version = partners._kept.copy.version  # type: ignore[union-attr]
    template = _partner(1543)
    written = [template.model_copy(update={"id": 7000 + n}) for n in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(partners.put, written))
    changes = sorted(
        int(item["change"]["N"])
        for item in boto3.client("dynamodb").scan(TableName=os.environ["PARTNERS_TABLE"])["Items"]
        if 7000 <= int(item["partner_id"]["N"]) < 7012
    )
    assert changes == list(range(version + 1, version + 13))
    assert {p.id for p in written} <= {p.id for p in partners.current().all()}
    assert partners._kept.copy.version == version + 12  # type: ignore[union-attr]
    client = boto3.client("dynamodb")
    for partner in written:
        client.delete_item(
            TableName=os.environ["PARTNERS_TABLE"], Key={"partner_id": {"N": str(partner.id)}}
        )


def test_a_version_the_index_does_not_show_yet_is_asked_for_again(demo: None) -> None:
    # The index is eventually consistent: a version counted before its partner shows there
    # must not be taken as seen, or that partner's change would never be applied.
    from pingpost.store import partners

    partners.current()
    version = partners._kept.copy.version  # type: ignore[union-attr]
    boto3.client("dynamodb").update_item(
        TableName=os.environ["COUNTERS_TABLE"],
        Key={"counter": {"S": partners.VERSION}},
        UpdateExpression="SET version = :ahead",
        ExpressionAttributeValues={":ahead": {"N": str(version + 1)}},
    )
    partners.current()
    assert partners._kept.copy.version == version  # type: ignore[union-attr]
    changed = _partner(225).model_copy(update={"company": "Seen at last"})
    partners.put(changed)  # version + 2
    assert _partner(225).company == "Seen at last"
    assert partners._kept.copy.version == version + 2  # type: ignore[union-attr]


def test_a_delivery_reads_its_partner_alone(demo: None) -> None:
    from pingpost.store import partners

    with counting() as made:
        found = partners.by_id(142)
    assert found is not None and found.id == 142
    assert made == {"GetItem": 1}
    assert partners.by_id(999_999) is None

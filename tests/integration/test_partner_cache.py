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

    (found,) = [p for p in partners.current().partners.values() if p.id == partner_id]
    return found


def _matching() -> set[int]:
    """The partners the exchange matches leads against now."""
    from pingpost import selling
    from pingpost.store import partners

    return {p.id for p in selling._indexed(partners.current()).all()}


def test_a_new_container_reads_every_partner_then_only_the_version(demo: None) -> None:
    from pingpost.store import partners

    with counting() as first:
        partners.current()
    assert first == {"GetItem": 1, "Scan": 1}
    with counting() as again:
        partners.current()  # the tests keep nothing: every use looks at the version
    assert again == {"GetItem": 1}
    # Nothing changed: the same copy, so the exchange's matching index is not built again.
    assert partners.current() is partners.current()
    from pingpost import selling

    assert selling._indexed(partners.current()) is selling._indexed(partners.current())


def test_a_partner_written_is_read_alone_and_applied(demo: None) -> None:
    from pingpost.store import partners

    before = _partner(142)
    partners.put(before.model_copy(update={"price": before.price + 1}))
    with counting() as made:
        after = _partner(142)
    assert made == {"GetItem": 1, "BatchGetItem": 1}
    assert after.price == before.price + 1
    # A partner paused leaves the partners that match, and comes back when resumed.
    partners.put(after.model_copy(update={"active": False}))
    assert 142 not in _matching()
    assert not partners.current().partners[142].active
    partners.put(after.model_copy(update={"active": True}))
    assert 142 in _matching()


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
    assert {p.id for p in written} <= {p.id for p in partners.current().partners.values()}
    assert partners._kept.copy.version == version + 12  # type: ignore[union-attr]
    client = boto3.client("dynamodb")
    for partner in written:
        client.delete_item(
            TableName=os.environ["PARTNERS_TABLE"], Key={"partner_id": {"N": str(partner.id)}}
        )


@pytest.mark.long
def test_a_container_further_behind_than_the_log_reads_every_partner_again(demo: None) -> None:
    from pingpost.store import partners

    partners.current()
    template = _partner(1543)
    written = [template.model_copy(update={"id": 8000 + n}) for n in range(partners.LOG + 1)]
    # Another container writes them: this one's copy is not told.
    for partner in written:
        partners.put(partner)
    with counting() as made:
        everyone = {p.id for p in partners.current().partners.values()}
    assert made == {"GetItem": 1, "Scan": 1}
    assert {p.id for p in written} <= everyone
    client = boto3.client("dynamodb")
    for partner in written:
        client.delete_item(
            TableName=os.environ["PARTNERS_TABLE"], Key={"partner_id": {"N": str(partner.id)}}
        )
    partners.forget()


def test_partners_are_read_as_they_are_now_whatever_the_order_of_their_writes(
    demo: None,
) -> None:
    # Found in review: a refresh trusted an eventually consistent index to show every write
    # up to the version in order, so a write it did not show yet could be skipped for ever.
    # The log names the partners written since; they are read consistently, as they are now.
    from pingpost.store import partners

    partners.current()
    first = _partner(225).model_copy(update={"company": "First"})
    second = _partner(142).model_copy(update={"company": "Second"})
    partners.put(first)
    partners.put(second)
    partners.put(first.model_copy(update={"company": "First, again"}))
    with counting() as made:
        seen = {p.id: p.company for p in partners.current().partners.values()}
    assert made == {"GetItem": 1, "BatchGetItem": 1}
    assert (seen[225], seen[142]) == ("First, again", "Second")


def test_a_delivery_reads_its_partner_alone(demo: None) -> None:
    from pingpost.store import partners

    with counting() as made:
        found = partners.by_id(142)
    assert found is not None and found.id == 142
    assert made == {"GetItem": 1}
    assert partners.by_id(999_999) is None

"""Posts to buyers that won by their bids, when DynamoDB answers badly or a post dies: each
reservation is confirmed, released or left for the next post or the sweep, never lost, never
posted twice, its hold given back once (regressions a review reproduced against the code).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.test_auction import (
    _dedupe_record,
    _killed,
    _vendors,
    buyer,
    counted,
    stored,
    submit,
)
from tests.integration.test_auction import bidders as bidders  # noqa: PLC0414 (fixtures)
from tests.integration.test_auction import market as market  # noqa: PLC0414


def lost(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "InternalServerError", "Message": "lost"}}, operation)


def once_lost(real: Callable[..., Any]) -> Callable[..., Any]:
    """`real`, whose first call is applied and its answer lost."""
    calls = []

    def call(*args: Any, **kwargs: Any) -> Any:
        done = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            raise lost("TransactWriteItems")
        return done

    return call


@pytest.fixture
def swept(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """Two scheduled retry runs with no grace period: the first sees a dead post, the next
    ends it."""
    from pingpost import redrive
    from pingpost.config import settings

    def sweep() -> None:
        with monkeypatch.context() as quick:
            quick.setenv("OUTBOX_GRACE_SECONDS", "0")
            settings.cache_clear()
            redrive.run(5)
            redrive.run(5)
        settings.cache_clear()

    yield sweep


def test_a_confirmation_whose_answer_was_lost_is_a_sale(
    market: Any, bidders: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pingpost.store import sales

    a = bidders[0]
    a.configure(low=20, high=20)
    market(buyer(931, 1, a))
    monkeypatch.setattr(sales, "confirm", once_lost(sales.confirm))
    answer = submit("full")
    lead = stored(answer.lead_id)
    assert (answer.status, lead.status, lead.sold_to) == ("Matched", "sold", {"931": Decimal(20)})
    assert counted(931)["sold"] == 1 and len(a.posts) == 1


def test_a_release_whose_answer_was_lost_goes_on_to_the_next_bid(
    market: Any, bidders: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pingpost.store import sales

    a, b, _ = bidders
    a.configure(low=20, high=20, reject_rate=1)
    b.configure(low=15, high=15)
    market(buyer(941, 1, a), buyer(942, 1, b))
    monkeypatch.setattr(sales, "release", once_lost(sales.release))
    answer = submit("full")
    lead = stored(answer.lead_id)
    assert (answer.status, lead.sold_to) == ("Matched", {"942": Decimal(15)})
    assert counted(941).get("sold", 0) == 0  # given back once
    assert lead.deliveries["941"]["state"] == "released"


def test_a_reservation_whose_fate_cannot_be_read_leaves_the_lead_to_the_sweep(
    market: Any, bidders: list[Any], monkeypatch: pytest.MonkeyPatch, swept: Any
) -> None:
    from pingpost import posting
    from pingpost.store import leads, sales

    a = bidders[0]
    a.configure(low=20, high=20)
    market(buyer(951, 30), buyer(952, 1, a, caps={"daily": 5}))
    _vendors(post_timeout=0.5)
    monkeypatch.setattr(posting, "_SETTLING_SECONDS", 0)
    real_sell, real_get = sales.sell, leads.get
    failing = {"get": False}

    def sell(*args: Any, **kwargs: Any) -> Any:
        done = real_sell(*args, **kwargs)
        if kwargs.get("reserve"):
            failing["get"] = True
            raise lost("TransactWriteItems")
        return done

    def get(lead_id: int) -> Any:
        if failing["get"]:
            raise lost("GetItem")
        return real_get(lead_id)

    with monkeypatch.context() as faulty:
        faulty.setattr(sales, "sell", sell)
        faulty.setattr(leads, "get", get)
        faulty.setattr(posting.time, "sleep", lambda _: None)
        answer = submit("full", Allowed_Times_Sold="2")
    # The fixed-price sale stands; the reservation is not recorded as sold, nor posted
    assert answer.status == "Matched"
    lead = stored(answer.lead_id)
    assert lead.status == "posting" and lead.deliveries["952"]["state"] == "reserved"
    assert len(a.posts) == 0
    time.sleep(0.6)
    swept()
    lead = stored(answer.lead_id)
    assert (lead.status, lead.sold_to) == ("sold", {"951": Decimal(30)})
    assert lead.deliveries["952"]["state"] == "released"
    assert counted(952).get("sold", 0) == 0 and len(a.posts) == 0


def test_a_release_that_never_lands_after_a_sale_still_answers_the_sale(
    market: Any, bidders: list[Any], monkeypatch: pytest.MonkeyPatch, swept: Any
) -> None:
    from pingpost import posting
    from pingpost.store import sales

    a, b, _ = bidders
    a.configure(low=20, high=20)
    b.configure(low=15, high=15, reject_rate=1)
    market(buyer(971, 1, a), buyer(972, 1, b))
    _vendors(post_timeout=0.5)
    monkeypatch.setattr(posting, "_SETTLING_SECONDS", 0)

    def release(*_: Any, **__: Any) -> bool:
        raise lost("TransactWriteItems")

    with monkeypatch.context() as faulty:
        faulty.setattr(sales, "release", release)
        faulty.setattr(posting.time, "sleep", lambda _: None)
        answer = submit("full", Allowed_Times_Sold="2")
    assert answer.status == "Matched"  # the buyer that accepted: the sale stands
    lead = stored(answer.lead_id)
    assert lead.status == "posting" and lead.deliveries["972"]["state"] == "reserved"
    time.sleep(0.6)
    swept()
    lead = stored(answer.lead_id)
    assert (lead.status, lead.sold_to) == ("sold", {"971": Decimal(20)})
    assert counted(972).get("sold", 0) == 0 and len(b.posts) == 1


def test_a_takeover_gives_back_what_the_dead_post_held_whatever_the_repost_changed(
    market: Any, bidders: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pingpost import posting
    from pingpost.config import settings
    from pingpost.store import sales
    from tests.faults import Killed

    a = bidders[0]
    a.configure(low=20, high=20)
    market(buyer(981, 1, a, caps={"daily": 2}, dedupe_days=30))
    _vendors(post_timeout=0.5)
    monkeypatch.setattr(posting, "_SETTLING_SECONDS", 0)
    ping = submit("ping")
    with monkeypatch.context() as dying:
        dying.setattr(sales, "confirm", _killed)
        with pytest.raises(Killed):
            submit("post", Lead_ID=str(ping.lead_id), Email="first@example.com")
    time.sleep(0.6)
    with monkeypatch.context() as quick:
        quick.setenv("POST_WAIT_SECONDS", "0.2")
        settings.cache_clear()
        again = submit("post", Lead_ID=str(ping.lead_id), Email="fixed@example.com")
    settings.cache_clear()
    assert again.status == "Unmatched" and len(a.posts) == 1
    assert not _dedupe_record(981, "first@example.com")  # the dead post's, given back
    assert counted(981).get("sold", 0) == 0


def test_a_reservation_is_given_back_as_it_was_taken_whatever_became_of_its_partner(
    market: Any, bidders: list[Any], monkeypatch: pytest.MonkeyPatch, swept: Any
) -> None:
    import boto3

    from pingpost import posting
    from pingpost.store import partners, sales
    from tests.faults import Killed

    a = bidders[0]
    a.configure(low=20, high=20)
    market(buyer(991, 1, a, caps={"daily": 5, "weekly": 9}))
    _vendors(post_timeout=0.5)
    monkeypatch.setattr(posting, "_SETTLING_SECONDS", 0)
    ping = submit("ping")
    with monkeypatch.context() as dying:
        dying.setattr(sales, "confirm", _killed)
        with pytest.raises(Killed):
            submit("post", Lead_ID=str(ping.lead_id))
    week = stored(ping.lead_id).deliveries["991"]["counters"][1]
    # The partner is deleted meanwhile (an operator's hand): nothing of it is read to give back
    import os

    boto3.client("dynamodb").delete_item(
        TableName=os.environ["PARTNERS_TABLE"], Key={"partner_id": {"N": "991"}}
    )
    partners.forget()
    time.sleep(0.6)
    swept()
    lead = stored(ping.lead_id)
    assert lead.status == "pinged" and lead.deliveries["991"]["state"] == "released"
    from pingpost.store import from_item

    item = boto3.client("dynamodb").get_item(
        TableName=os.environ["COUNTERS_TABLE"], Key={"counter": {"S": week}}, ConsistentRead=True
    )
    assert from_item(item["Item"])["sold"] == 0

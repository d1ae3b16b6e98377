"""The auction's clock, with buyers simulated (no HTTP): what is asked, when, and how bids rank."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from pingpost import auction, fanout
from pingpost.matching import Decision, Outcome
from pingpost.models import Partner
from pingpost.stores import Stores
from tests.stores import buyer

ANSWER = {"accepted": "accepted", "price": "bid", "token": "token"}
BIDDING = {
    "bid": {"url": "https://b.example/ping", "answer": ANSWER},
    "post": {"url": "https://b.example/post"},
}


def bidder(id: int, floor: float = 1, **extra: Any) -> Partner:
    return buyer(id, floor, **BIDDING, **extra)


class Buyers:
    """Simulated buyers behind `fanout.send_all`: each bids its ID; `sent` lists the requests
    sent and `budgets` the time each auction gave them."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.budgets: list[float] = []

    def send_all(self, requests: dict[int, fanout.Request], seconds: float) -> Any:
        self.sent += list(requests)
        self.budgets.append(seconds)
        body = b'{"accepted": true, "bid": %d, "token": "t"}'
        return {pid: fanout.Answer(200, body % pid, "application/json") for pid in requests}


@pytest.fixture
def answering(monkeypatch: pytest.MonkeyPatch) -> Buyers:
    buyers = Buyers()
    monkeypatch.setattr(fanout, "send_all", buyers.send_all)
    return buyers


class SlowSecrets:
    """Secret headers that take `seconds` to read (SSM, for a container whose copy is old)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.read: list[int] = []

    def headers(self, partner_id: int, request: str = "delivery") -> dict[str, str]:
        if partner_id not in self.read:  # kept by the container once read
            time.sleep(self.seconds)
            self.read.append(partner_id)
        return {"X-Key": "secret"}


def test_the_buyers_get_what_is_left_of_the_budget_and_bid(answering: Buyers) -> None:
    asked = auction.ask([bidder(1), bidder(2), buyer(3, 9)], {}, test=False, seconds=0.3)
    assert {k: (v["outcome"], v.get("price")) for k, v in asked.items()} == {
        "1": ("bid", Decimal(1)),
        "2": ("bid", Decimal(2)),
    }  # a fixed-price partner is not asked
    (budget,) = answering.budgets
    assert 0 < budget <= 0.3


def test_secret_headers_are_read_at_once_and_a_buyer_with_no_time_left_is_never_asked(
    answering: Buyers,
) -> None:
    # A header kept in SSM, read before the request.
    endpoint = BIDDING["bid"] | {"secret_headers": ["X-Key"]}
    partners = [buyer(n, 1, bid=endpoint, post=BIDDING["post"]) for n in (1, 2, 3, 4)]
    slow = SlowSecrets(0.1)
    started = time.monotonic()
    asked = auction.ask(partners, {}, test=False, seconds=0.3, stores=Stores(secrets=slow))
    took = time.monotonic() - started
    assert took < 0.3, took  # four reads of 0.1 s at once, not one after another
    assert sorted(slow.read) == [1, 2, 3, 4]
    assert all(r["outcome"] == "bid" for r in asked.values())
    # Reads that take the whole budget: the buyers are recorded as not asked, nothing is sent.
    answering.sent.clear()
    slower = Stores(secrets=SlowSecrets(0.3))
    asked = auction.ask(partners, {}, test=False, seconds=0.2, stores=slower)
    assert {r["outcome"] for r in asked.values()} == {auction.NOT_ASKED}
    assert answering.sent == []


def test_at_most_so_many_buyers_are_asked_for_one_lead(answering: Buyers) -> None:
    many = [bidder(n) for n in range(1, auction.MOST_BUYERS + 6)]
    asked = auction.ask(many, {}, test=False, seconds=2)
    assert len(asked) == len(many)
    over = [r for r in asked.values() if r["outcome"] == auction.NOT_ASKED]
    assert len(over) == 5 and all("over 64 buyers" in r["reason"] for r in over)
    assert sorted(answering.sent) == list(range(1, auction.MOST_BUYERS + 1))


def test_bids_rank_with_fixed_prices_and_say_why_they_were_not_taken() -> None:
    partners = (bidder(1, 10), bidder(2, 1), bidder(3, 1), buyer(4, 12), bidder(5, 1))
    outcome = Outcome(partners, tuple(Decision(p.id, None) for p in partners))
    asked = {
        "1": {"outcome": "bid", "price": Decimal("9.99")},
        "2": {"outcome": "bid", "price": Decimal("4.99")},
        "3": {"outcome": "bid", "price": Decimal("12")},
        "5": {"outcome": "no bid", "reason": "no_bid"},
    }
    priced = auction.priced(outcome, asked, Decimal(5))
    assert [(p.id, p.price) for p in priced.ranked] == [(3, 12), (4, 12)]  # equals: as matched
    assert {d.partner_id: d.reason for d in priced.decisions} == {
        1: "bid 9.99 below its floor 10.00",
        2: "bid 4.99 below the lead's cost 5.00",
        3: None,
        4: None,
        5: "no bid: no_bid",
    }


def test_one_buyers_secret_headers_read_slowly_do_not_hold_the_auction(answering: Buyers) -> None:
    # Found by review: with one such buyer, its headers were read on the auction's own thread,
    # without its deadline (a 0.3 s auction took 2 s).
    endpoint = BIDDING["bid"] | {"secret_headers": ["X-Key"]}
    partners = [buyer(1, 1, bid=endpoint, post=BIDDING["post"]), bidder(2)]
    started = time.monotonic()
    asked = auction.ask(
        partners, {}, test=False, seconds=0.2, stores=Stores(secrets=SlowSecrets(1))
    )
    took = time.monotonic() - started
    assert took < 0.2 * 2, took
    assert asked["1"]["outcome"] == auction.NOT_ASKED and asked["2"]["outcome"] == "bid"
    assert answering.sent == [2]


def test_secret_headers_that_cannot_be_read_fail_their_buyer_alone(answering: Buyers) -> None:
    class Broken:
        def headers(self, partner_id: int, request: str = "delivery") -> dict[str, str]:
            raise RuntimeError("SSM unavailable")

    endpoint = BIDDING["bid"] | {"secret_headers": ["X-Key"]}
    partners = [buyer(1, 1, bid=endpoint, post=BIDDING["post"]), bidder(2)]
    asked = auction.ask(partners, {}, test=False, seconds=0.5, stores=Stores(secrets=Broken()))
    assert asked["1"] | {"ms": 0} == {
        "outcome": auction.FAILED,
        "reason": "headers could not be read: RuntimeError",
        "ms": 0,
        "unsent": True,  # not counted asked in the report
    }
    assert asked["2"]["outcome"] == "bid"

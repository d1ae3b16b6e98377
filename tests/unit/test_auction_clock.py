"""The auction's clock and its threads, with buyers simulated (no HTTP): what is asked, when."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from pingpost import auction
from pingpost.matching import Decision, Outcome
from pingpost.models import Partner
from tests.stores import buyer

BIDDING = {"bid": {"url": "https://b.example/ping"}, "post": {"url": "https://b.example/post"}}


def bidder(id: int, floor: float = 1, **extra: Any) -> Partner:
    return buyer(id, floor, **BIDDING, **extra)


class Buyers:
    """Simulated buyers: each answers a bid of its ID after `latency[id]` seconds (default 0),
    and `sent` lists whom a request was sent to."""

    def __init__(self) -> None:
        self.latency: dict[int, float] = {}
        self.sent: list[int] = []

    def ask(self, partner: Partner, data: Any, test: bool, seconds: float, stores: Any) -> Any:
        self.sent.append(partner.id)
        wait = self.latency.get(partner.id, 0.0)
        time.sleep(min(wait, seconds))
        if wait > seconds:
            return {"outcome": auction.TIMED_OUT, "reason": f"timeout after {seconds} s"}
        return {"outcome": "bid", "price": Decimal(partner.id), "token": "t", "carried": {}}


@pytest.fixture
def answering(monkeypatch: pytest.MonkeyPatch) -> Buyers:
    buyers = Buyers()
    monkeypatch.setattr(auction, "_ask", buyers.ask)
    return buyers


def test_the_auction_ends_at_its_budget_whatever_a_buyer_takes(answering: Buyers) -> None:
    answering.latency[2] = 3.0
    started = time.monotonic()
    asked = auction.ask([bidder(1), bidder(2), buyer(3, 9)], {}, test=False, seconds=0.3)
    took = time.monotonic() - started
    assert took < 0.3 * 3, took  # a ratio of the budget: the slow buyer does not hold it
    assert asked["1"]["outcome"] == "bid" and asked["2"]["outcome"] == auction.TIMED_OUT
    assert "3" not in asked  # a fixed-price partner is not asked


def test_a_buyer_whose_turn_comes_after_the_budget_is_never_asked(answering: Buyers) -> None:
    # Every thread of the pool busy (the slow buyers of other leads): this lead's buyer would be
    # asked after its auction ended. It is recorded as not asked, and nothing is sent to it.
    busy = threading.Event()
    held = [auction._POOL.submit(busy.wait, 10) for _ in range(auction.MOST_BUYERS)]
    try:
        asked = auction.ask([bidder(7)], {}, test=False, seconds=0.2)
    finally:
        busy.set()
    for future in held:
        future.result(timeout=10)
    auction._POOL.submit(lambda: None).result(timeout=10)  # the queue worked through
    assert asked["7"]["outcome"] == auction.TIMED_OUT
    assert 7 not in answering.sent


def test_at_most_so_many_buyers_are_asked_for_one_lead(answering: Buyers) -> None:
    many = [bidder(n) for n in range(1, auction.MOST_BUYERS + 6)]
    asked = auction.ask(many, {}, test=False, seconds=2)
    assert len(asked) == len(many)
    over = [r for r in asked.values() if r["outcome"] == auction.NOT_ASKED]
    assert len(over) == 5 and all("over 64 buyers" in r["reason"] for r in over)


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

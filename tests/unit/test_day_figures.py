"""The report's day figures with the stores in memory: what each write counts, and what a
repeat or a failed write does not; the report's sums, table, CSV and page without AWS.

tests/integration/test_report.py makes the same figures on the embedded AWS endpoint and
runs `pingpost report` on them.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from pingpost import answering, delivery, exchange, redrive
from pingpost.decoding import Request
from pingpost.delivery import Attempt, Permanent, Undelivered
from pingpost.models import SOLD
from pingpost.reasons import DAILY_CAP
from pingpost.store import figures
from pingpost.store.figures import Figures, Tally, bid_key, bid_step
from pingpost.store.queues import DeadLetter, Delivery
from pingpost_local.report import Period, keys, totals
from pingpost_local.report_html import page
from pingpost_local.report_render import csv_text, table
from tests.leads import complete
from tests.stores import KEY, Partners, World, buyer, pinged, vendor

TODAY = datetime.now(UTC)


pytestmark = pytest.mark.usefixtures("quick_posts")


@pytest.fixture
def world() -> World:
    """Vendor v1 (cost 5), and buyers of every lead at 30 and 20."""
    out = World()
    out.vendors.by["v1"] = vendor()
    out.partners = Partners.of(buyer(1, 30), buyer(2, 20))
    return out


def submit(world: World, mode: str, **changes: str) -> Any:
    return exchange.submit(
        Request(complete(mode, **({"Key": KEY} | changes))), stores=world.stores()
    )


def vendor_day(world: World) -> Figures:
    """Vendor v1's figures today."""
    return world.figures().get(figures.vendor_key("v1", figures.day(TODAY)), Figures())


def partner_day(world: World, partner_id: int) -> Figures:
    return world.figures().get(figures.partner_key(partner_id, figures.day(TODAY)), Figures())


def test_a_ping_counts_with_its_lead_and_a_test_ping_counts_nothing(world: World) -> None:
    submit(world, "ping")
    submit(world, "ping", Match_With_Partner_ID="99")  # nobody listed: Unmatched
    submit(world, "ping", Test_Lead="1")
    assert vendor_day(world) == Figures(pings=2, matched=1)
    (first, *_) = world.leads.tallied
    assert first.key == "day#" + figures.day(TODAY) + "#vendor#v1"


def test_a_post_counts_its_sales_on_the_vendor_and_each_partner_and_itself_once(
    world: World,
) -> None:
    ping = submit(world, "ping")
    submit(world, "post", Lead_ID=str(ping.lead_id), Allowed_Times_Sold="2")
    # Cost 5 is owed once, with the first sale: the exchange keeps 30 - 5, then all of 20.
    assert vendor_day(world) == Figures(
        pings=1, matched=1, posts=1, sales=2, revenue=Decimal(50), margin=Decimal(45)
    )
    assert partner_day(world, 1) == Figures(sales=1, revenue=Decimal(30), margin=Decimal(25))
    assert partner_day(world, 2) == Figures(sales=1, revenue=Decimal(20), margin=Decimal(20))


def test_a_repeated_post_only_answers_and_counts_nothing(world: World) -> None:
    ping = submit(world, "ping")
    submit(world, "post", Lead_ID=str(ping.lead_id))
    before = world.figures()
    again = submit(world, "post", Lead_ID=str(ping.lead_id))
    assert again.status == "Matched"
    assert world.figures() == before


def test_a_sale_refused_or_failing_counts_nothing(world: World) -> None:
    world.sales.refusals[1] = DAILY_CAP
    world.sales.unreachable_for.add(2)
    ping = submit(world, "ping")
    with pytest.raises(Exception, match="down"):
        submit(world, "post", Lead_ID=str(ping.lead_id))
    assert vendor_day(world) == Figures(pings=1, matched=1)
    assert partner_day(world, 1) == partner_day(world, 2) == Figures()


def test_a_post_that_sells_nothing_counts_one_post(world: World) -> None:
    world.sales.refusals |= {1: DAILY_CAP, 2: DAILY_CAP}
    ping = submit(world, "ping")
    assert submit(world, "post", Lead_ID=str(ping.lead_id)).status == "Unmatched"
    assert vendor_day(world) == Figures(pings=1, matched=1, posts=1)


def test_a_full_request_counts_as_a_ping_and_a_post_and_its_repeat_adds_nothing(
    world: World,
) -> None:
    fields = complete("full", Key=KEY)
    first = exchange.submit(Request(dict(fields)), stores=world.stores())
    counted = world.figures()
    again = exchange.submit(Request(dict(fields)), stores=world.stores())
    assert again.lead_id == first.lead_id and world.figures() == counted
    world.sales.refusals |= {1: DAILY_CAP, 2: DAILY_CAP}
    assert submit(world, "full").status == "Unmatched"  # a ping not matched, and a post
    assert vendor_day(world) == Figures(
        pings=2, matched=1, posts=2, sales=1, revenue=Decimal(30), margin=Decimal(25)
    )


def test_a_test_lead_sold_to_a_test_partner_counts_nothing(world: World) -> None:
    world.partners = Partners.of(buyer(5, 40, test=True))
    ping = submit(world, "ping", Test_Lead="1")
    assert submit(world, "post", Lead_ID=str(ping.lead_id)).status == "Matched"
    assert world.figures() == {}


def test_the_margin_is_what_the_vendor_is_not_owed() -> None:
    fixed = vendor(cost=5)
    assert answering.margin(fixed, Decimal(30), Decimal(5), first=True) == Decimal(25)
    assert answering.margin(fixed, Decimal(30), Decimal(5), first=False) == Decimal(30)
    amount = vendor(dynamic_pricing=True, margin=4)
    assert answering.margin(amount, Decimal(30), Decimal(0), first=True) == Decimal(4)
    percent = vendor(dynamic_pricing=True, margin=10, margin_type="percent")
    assert answering.margin(percent, Decimal(30), Decimal(0), first=False) == Decimal(3)
    # A net price is never below 0: a margin above the price keeps the whole price.
    assert answering.margin(amount, Decimal(3), Decimal(0), first=True) == Decimal(3)


@pytest.fixture
def sold() -> World:
    """Lead 1 sold to partner 7; lead 2, a test lead, too."""
    out = World()
    out.partners = Partners.of(buyer(7, delivery={"url": "https://partner.example/leads"}))
    out.leads.stored[1] = pinged(1, {}, status=SOLD)
    out.leads.stored[2] = pinged(2, {}, status=SOLD, test=True)
    return out


def test_a_failed_attempt_and_a_parked_delivery_count_on_the_partner(
    sold: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "send", lambda *a, **kw: Attempt(False, "HTTP 503"))
    with pytest.raises(Undelivered):
        delivery.deliver(Delivery(1, 7), sold.stores())
    with pytest.raises(Undelivered):
        delivery.deliver(Delivery(2, 7), sold.stores())  # a test lead: not counted

    def refuse(*args: Any, **kw: Any) -> Attempt:
        raise Permanent("https is required")

    monkeypatch.setattr(delivery, "send", refuse)
    assert delivery.deliver(Delivery(1, 7), sold.stores()) == "parked"
    assert partner_day(sold, 7) == Figures(failed=1, parked=1)


def test_a_delivery_parked_by_the_retry_counts_once(sold: World) -> None:
    from pingpost.config import settings

    last = str(settings().max_redrives)
    body = json.dumps({"lead_id": 1, "partner_id": 7})
    # Two dead letters of one sale (a message the sweep sent again, say): parked once.
    sold.queues.dead = [DeadLetter("r1", body, last), DeadLetter("r2", body, last)]
    assert redrive.run(5, sold.stores()).parked == 1
    test_lead = json.dumps({"lead_id": 2, "partner_id": 7})
    sold.queues.dead = [DeadLetter("r3", test_lead, last)]
    assert redrive.run(5, sold.stores()).parked == 1  # a test lead's: parked, not counted
    assert partner_day(sold, 7) == Figures(parked=1)


def test_tallies_of_one_item_are_added_into_one() -> None:
    at = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    one = figures.vendor_day("v1", at, Figures(sales=1, revenue=Decimal("12.50")))
    two = figures.vendor_day("v1", at, Figures(posts=1))
    assert one.key == two.key == "day#2026-11-30#vendor#v1"
    assert figures.merged([one, two]) == [
        Tally(one.key, Figures(posts=1, sales=1, revenue=Decimal("12.50")))
    ]
    update = figures.adding(figures.merged([one, two])[0])["Update"]
    assert update["UpdateExpression"] == (
        "ADD #posts :posts, #sales :sales, #revenue :revenue SET expires_at = :expires"
    )


def test_a_period_is_days_back_from_today_or_between_two_days() -> None:
    today = date(2026, 11, 30)
    assert Period.of("7d", None, today) == Period(date(2026, 11, 24), today)
    assert Period.of("1d", None, today).days() == [today]
    assert Period.of("2026-11-01", "2026-11-03", today).days() == [
        date(2026, 11, 1),
        date(2026, 11, 2),
        date(2026, 11, 3),
    ]
    with pytest.raises(ValueError, match="Nd"):
        Period.of("a week", None, today)
    with pytest.raises(ValueError, match="after"):
        Period.of("2026-12-01", None, today)


def _counted(partner_id: int, bid: float | None = None, **counts: int) -> dict[str, Decimal]:
    """What auctions and posts count of a buyer that bids (and its `bid`, counted by step)."""
    out = {bid_key(partner_id, what): Decimal(n) for what, n in counts.items()}
    if bid is not None:
        out[bid_key(partner_id, f"at#{bid_step(Decimal(str(bid)))}")] = Decimal(1)
    return out


def test_the_report_adds_days_and_earlier_versions_shards_and_counts_a_sale_once_per_day() -> None:
    period = Period(date(2026, 11, 29), date(2026, 11, 30))
    wanted = keys(period.days(), ["v1"], [7])
    # Per day: the vendor's figures (its key, and the 8 shards earlier versions wrote), its 8
    # bids items, and the partner's day.
    assert len(wanted) == 2 * ((1 + 8) + 8 + 1)
    assert "day#2026-11-30#vendor#v1" in wanted and "day#2026-11-30#vendor#v1#7" in wanted
    found = {
        "day#2026-11-29#vendor#v1#0": Figures(pings=2, matched=1),
        "day#2026-11-30#vendor#v1": Figures(
            pings=1, matched=1, posts=1, sales=1, revenue=Decimal(30), margin=Decimal(25)
        ),
        # Partner 7 bid on v1's leads: asked 4 times, 2 bids (25.50 and 31), 1 timeout ...
        "day#2026-11-29#bids#v1#6": Figures(bids=_counted(7, asked=2, bid=25.5)),
        "day#2026-11-30#bids#v1#7": Figures(bids=_counted(7, asked=1, bid=31)),
        "day#2026-11-30#bids#v1#2": Figures(bids=_counted(7, asked=1, timeouts=1)),
        # ... won both (posted), and accepted one.
        "day#2026-11-30#partner#7": Figures(
            sales=2,
            revenue=Decimal(30),
            margin=Decimal(25),
            failed=2,
            parked=1,
            returns=1,
            bids=_counted(7, won=2, took=1),
        ),
        # The day a sale of v1's lead (to partner 7) was returned: its price taken off.
        "day#2026-11-30#vendor#v1#5": Figures(returns=1, revenue=Decimal(-5), margin=Decimal(-5)),
        "day#2026-11-30#partner#8": Figures(sales=5),  # a partner not asked for
    }
    report = totals(period, {"v1": "Vendor One"}, {7: "Buyer 7"}, found)
    assert report.vendors[0].figures._replace(bids={}) == Figures(
        pings=3, matched=2, posts=1, sales=1, revenue=Decimal(25), margin=Decimal(20), returns=1
    )
    assert report.partners[0].figures._replace(bids={}) == found[
        "day#2026-11-30#partner#7"
    ]._replace(bids={})
    assert report.days[date(2026, 11, 30)]._replace(bids={}) == Figures(
        pings=1,
        matched=1,
        posts=1,
        sales=1,
        revenue=Decimal(25),
        margin=Decimal(20),
        failed=2,
        parked=1,
        returns=1,
    )
    assert csv_text(report).splitlines() == [
        "kind,id,name,pings,matched,match_rate,posts,sales,revenue,margin,deliveries_failed,parked"
        ",returns,return_rate,bids_asked,bids_made,bid_timeouts,bids_won,win_rate,median_bid"
        ",posts_accepted,post_acceptance",
        "vendor,v1,Vendor One,3,2,0.6667,1,1,25.00,20.00,,,1,1.0000,,,,,,,,",
        "partner,7,Buyer 7,,,,,2,30.00,25.00,2,1,1,0.5000,4,2,1,2,1.0000,25.00-28.00,1,0.5000",
    ]
    text = table(report)
    assert "pingpost report: 2026-11-29 to 2026-11-30 (UTC days)" in text
    assert (
        "v1  Vendor One      3       66.7%      1      1    25.00   20.00       -       -        1"
        "       100.0%" in text
    )
    bidders = text.split("Partners that bid\n")[1].splitlines()
    assert bidders[0].split() == [
        *("id", "name", "asked", "made", "timeouts", "won", "win", "rate", "median", "bid"),
        *("posts", "accepted", "post", "acceptance"),
    ]
    assert bidders[1].split() == [
        *("7", "Buyer", "7", "4", "2", "1", "2", "100.0%", "25.00-28.00", "1", "50.0%")
    ]
    svg_page = page(report)
    assert svg_page.count("<svg") == 3
    assert "http" not in svg_page.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', ""
    )


@pytest.mark.parametrize(
    ("bid", "step"),
    [
        ("25", 2500),
        ("27.99", 2500),
        ("28", 2800),
        ("24.99", 2200),
        ("9.99", 900),
        ("10.5", 1000),
        ("0.27", 25),
        ("0.05", 5),
        ("0.001", 1),
        ("1234.56", 120000),
        ("9999999999.99", 900000000000),
    ],
)
def test_a_bid_counts_in_the_step_of_about_ten_percent_at_or_below_it(bid: str, step: int) -> None:
    assert figures.bid_step(Decimal(bid)) == step


def test_the_median_bid_is_the_step_the_lower_median_falls_in() -> None:
    def median(*bids: str) -> tuple[Decimal, Decimal] | None:
        counted = Figures()
        for bid in bids:
            counted += Figures(bids=_counted(7, bid=float(bid)))
        return figures.bid_median(counted.bids, 7)

    assert median() is None
    assert median("25.5") == (Decimal(25), Decimal(28))
    assert median("12", "31", "25.5", "40") == (Decimal(25), Decimal(28))
    assert median("12", "31", "25.5") == (Decimal(25), Decimal(28))
    assert median("9.5", "9.99", "100") == (Decimal(9), Decimal(10))
    assert median("95", "99") == (Decimal(90), Decimal(100))


def test_an_auction_counts_each_buyer_asked_and_its_bid_or_timeout() -> None:
    from pingpost import auction

    counted = auction.tally(
        {
            "1": {"outcome": "bid", "price": Decimal("31.50"), "token": "t"},
            "2": {"outcome": "timed out", "reason": "after 300 ms"},
            "3": {"outcome": "no bid", "reason": "declined"},
            "4": {"outcome": "not asked", "reason": "no time left"},
            "5": {"outcome": "bad answer", "reason": "price is not a number"},
            "6": {"outcome": "failed", "reason": "bid URL refused: ...", "unsent": True},
        }
    )
    assert counted == {
        "bid#1#asked": 1,
        "bid#1#at#3000": 1,
        "bid#2#asked": 1,
        "bid#2#timeouts": 1,
        "bid#3#asked": 1,
        "bid#5#asked": 1,
    }
    update = figures.adding(Tally("day#2026-11-30#bids#v1#0", Figures(pings=1, bids=counted)))
    written = update["Update"]
    names = written["ExpressionAttributeNames"]
    assert set(names.values()) == {"pings", *counted}
    assert written["UpdateExpression"].startswith("ADD ")
    assert Figures.of({names[k]: 1 for k in names}).bids == dict.fromkeys(counted, 1)


def test_an_auction_of_the_most_buyers_is_spread_over_the_vendors_bids_items() -> None:
    # 64 buyers that all bid, each at its own step: 8 to each of the 8 items of the vendor's
    # day (by partner ID), each update well inside an expression's 4 KB.
    from pingpost import auction

    asked = {
        str(n): {"outcome": "bid", "price": Decimal(n) * Decimal("1.7"), "token": "t"}
        for n in range(1, auction.MOST_BUYERS + 1)
    }
    spread = auction.tallies("v1", TODAY, asked)
    assert [t.key for t in spread] == figures.bids_keys("v1", figures.day(TODAY))
    for tally in spread:
        update = figures.adding(tally)["Update"]
        assert len(update["UpdateExpression"]) < 4096
        assert len(update["ExpressionAttributeNames"]) == 2 * auction.MOST_BUYERS // 8
        assert {name.split("#")[1] for name in tally.figures.bids} == {
            str(n) for n in range(1, auction.MOST_BUYERS + 1) if n % 8 == int(tally.key[-1])
        }
    assert auction.tallies("v1", TODAY, {"1": {"outcome": "not asked"}}) == []


def test_a_ping_without_an_auction_writes_no_bids_item(world: World) -> None:
    submit(world, "ping")
    assert not [key for key in world.figures() if "#bids#" in key]

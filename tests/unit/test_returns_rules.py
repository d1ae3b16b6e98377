"""Returns with the stores in memory: the order of the rules, and what a return counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pingpost import returns
from pingpost.errors import InvalidRequest, LeadNotFound
from pingpost.store import figures, sales
from pingpost.store.figures import Figures
from tests.stores import Partners, World, buyer, pinged

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SOLD_AT = int((NOW - timedelta(days=2)).timestamp() * 1000)


@pytest.fixture
def world() -> World:
    """Lead 7 of vendor v1, sold to partner 1 at 30 two days ago, counted in its day."""
    out = World()
    out.partners = Partners.of(buyer(1, 30, return_days=3), buyer(2, 20, return_days=3))
    charged = {"1": sales.charge_text(1, SOLD_AT, ["cap#1#day#2026-12-05"])}
    out.leads.stored[7] = pinged(7, {}, sold_to={"1": Decimal(30)}, charged=charged)
    return out


def test_a_return_gives_back_the_counters_the_sale_charged_and_takes_its_price_off(
    world: World,
) -> None:
    one = world.partners.by_id(1)
    assert one is not None
    assert returns.give_back(one, 7, " wrong number ", NOW, world.stores()) == "returned"
    assert world.sales.given_back == [(7, 1, ["cap#1#day#2026-12-05"])]
    (record,) = world.leads.stored[7].returns
    assert record["reason"] == "wrong number" and record["price"] == 30
    taken = Figures(returns=1, revenue=Decimal(-30), margin=Decimal(-30))
    found = world.figures()
    assert found[figures.partner_key(1, "2026-12-07")] == taken
    assert found[figures.vendor_key("v1", "2026-12-07")] == taken


def test_returned_already_comes_before_the_window_and_the_partners_settings(
    world: World,
) -> None:
    one = world.partners.by_id(1)
    assert one is not None
    assert returns.give_back(one, 7, "x", NOW, world.stores()) == "returned"
    late = NOW + timedelta(days=30)
    assert returns.give_back(one, 7, "x", late, world.stores()) == "returned already"
    none = one.model_copy(update={"return_days": 0})
    assert returns.give_back(none, 7, "x", NOW, world.stores()) == "returned already"
    assert len(world.sales.given_back) == 1


def test_the_window_runs_from_the_sale_the_lead_recorded(world: World) -> None:
    one = world.partners.by_id(1)
    assert one is not None
    just_past = datetime.fromtimestamp(SOLD_AT / 1000, UTC) + timedelta(days=3, seconds=1)
    with pytest.raises(returns.ReturnRefused, match="sold on 2026-12-05: past the 3 days"):
        returns.give_back(one, 7, "x", just_past, world.stores())
    assert returns.give_back(one, 7, "x", just_past - timedelta(seconds=2), world.stores())


def test_a_lead_the_partner_did_not_buy_or_a_reason_that_is_not_one_is_refused(
    world: World,
) -> None:
    two = world.partners.by_id(2)
    one = world.partners.by_id(1)
    assert one is not None and two is not None
    with pytest.raises(LeadNotFound, match="Partner 2 did not buy lead 7"):
        returns.give_back(two, 7, "x", NOW, world.stores())
    with pytest.raises(LeadNotFound):
        returns.give_back(one, 8, "x", NOW, world.stores())
    for reason in ("", " ", "x" * 201, "\ud800"):
        with pytest.raises(InvalidRequest, match="reason must be text of 1 to 200 characters"):
            returns.give_back(one, 7, reason, NOW, world.stores())
    assert world.sales.given_back == [] and world.figures() == {}


def test_a_test_leads_return_counts_nothing(world: World) -> None:
    world.leads.stored[7].test = True
    world.leads.stored[7].charged = {"1": sales.charge_text(1, SOLD_AT, [])}
    one = world.partners.by_id(1)
    assert one is not None
    assert returns.give_back(one, 7, "x", NOW, world.stores()) == "returned"
    assert world.sales.given_back == [(7, 1, [])] and world.figures() == {}

"""The exchange's paths with its stores in memory: every decision of ping, post and full.

The integration tests run the same paths against the embedded AWS endpoint; here each store's
answer is set up directly, so each branch is reached on purpose and nothing waits on AWS.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pingpost import exchange
from pingpost.decoding import Request
from pingpost.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    LeadNotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
)
from pingpost.identity import HashedValue
from pingpost.models import PINGED, POSTING, SOLD, UNSOLD
from pingpost.reasons import DAILY_CAP, SCORE
from pingpost.store.sales import LOST, TIMES_SOLD
from tests.leads import complete
from tests.stores import KEY, Partners, World, buyer, pinged, vendor

pytestmark = pytest.mark.usefixtures("quick_posts")


@pytest.fixture
def world() -> World:
    """One vendor, and three buyers of every lead at 30, 20 and 10."""
    out = World()
    out.vendors.by["v1"] = vendor()
    out.partners = Partners.of(buyer(1, 30), buyer(2, 20), buyer(3, 10))
    return out


def request(mode: str, **changes: str) -> Request:
    return Request(complete(mode, **({"Key": KEY} | changes)))


def submit(world: World, mode: str, **changes: str) -> Any:
    return exchange.submit(request(mode, **changes), stores=world.stores())


def test_a_request_without_a_key_an_unknown_key_or_a_disabled_vendor_is_refused(
    world: World,
) -> None:
    with pytest.raises(Unauthorized, match="Key is missing"):
        submit(world, "ping", Key="")
    with pytest.raises(Unauthorized, match="Invalid Key"):
        submit(world, "ping", Key="not-a-key")
    world.vendors.by["v1"] = vendor(active=False)
    with pytest.raises(Forbidden):
        submit(world, "ping")


def test_a_vendor_over_its_rate_limit_is_told_to_retry(world: World) -> None:
    world.vendors.by["v1"] = vendor(rate_limit=5)
    world.counters.over.add("v1")
    with pytest.raises(TooManyRequests):
        submit(world, "ping")
    world.counters.over.clear()
    assert submit(world, "ping").status == "Matched"


def test_a_ping_stores_the_lead_with_its_answer_and_decisions(world: World) -> None:
    world.partners = Partners.of(buyer(1, 30), buyer(2, 20, filters={"min_score": 99}))
    answer = submit(world, "ping", Allowed_Times_Sold="2")
    assert (answer.status, answer.matches) == ("Matched", 1)
    lead = world.leads.stored[answer.lead_id]
    assert lead.status == PINGED and lead.answer == answer.stored()
    assert lead.decisions == [[1, "matched"], [2, SCORE]]
    assert "Key" not in lead.data and lead.expires_at is not None


def test_a_ping_nobody_buys_is_unmatched_and_still_stored(world: World) -> None:
    world.partners = Partners()
    answer = submit(world, "ping")
    assert answer.status == "Unmatched"
    assert world.leads.stored[answer.lead_id].status == PINGED


def test_a_lead_too_large_is_refused_before_it_is_stored(world: World) -> None:
    matches = tuple(HashedValue("email", "plain", f"{n:0200d}") for n in range(2000))
    too_large = Request(complete("ping", Key=KEY), matches=matches)
    with pytest.raises(PayloadTooLarge):
        exchange.submit(too_large, stores=world.stores())
    assert not world.leads.stored


def test_a_full_lead_is_sold_to_the_best_partners_allowed_and_queued(world: World) -> None:
    answer = submit(world, "full", Allowed_Times_Sold="2")
    assert (answer.status, answer.matches) == ("Matched", 2)
    lead = world.leads.stored[answer.lead_id]
    assert lead.status == SOLD and sorted(lead.sold_to) == ["1", "2"]
    # The last sale ended the lead in its own write: no separate finish.
    assert world.sales.made == [(answer.lead_id, 1, False), (answer.lead_id, 2, True)]
    assert [(d.lead_id, d.partner_id) for d, _ in world.queues.sent] == [
        (answer.lead_id, 1),
        (answer.lead_id, 2),
    ]
    assert world.deliveries.cleared == [(answer.lead_id, {1, 2})]


def test_each_sale_a_request_makes_counts_once_in_the_metrics_and_a_test_leads_not(
    world: World,
) -> None:
    from pingpost.observability import metrics

    def counted(mode: str, **changes: str) -> tuple[list[float], list[float]]:
        metrics.clear_metrics()
        submit(world, mode, **changes)
        found = metrics.metric_set
        return list(found.get("Sales", {}).get("Value", [])), list(
            found.get("Revenue", {}).get("Value", [])
        )

    # A full lead sold twice: two sales, at their partners' prices
    assert counted("full", Allowed_Times_Sold="2") == ([1.0, 1.0], [30.0, 20.0])
    # A ping sells nothing; its post sells once
    ping = submit(world, "ping")
    metrics.clear_metrics()
    assert counted("post", Lead_ID=str(ping.lead_id)) == ([1.0], [30.0])
    # The same post again answers the first one's sale: nothing new is counted
    assert counted("post", Lead_ID=str(ping.lead_id)) == ([], [])
    # A test lead's sale is not revenue
    world.partners = Partners.of(buyer(9, 15, test=True))
    assert counted("full", Test_Lead="1") == ([], [])
    metrics.clear_metrics()


def test_a_partner_refusing_at_the_sale_is_passed_over_with_its_reason(world: World) -> None:
    world.sales.refusals[1] = DAILY_CAP
    answer = submit(world, "full")
    lead = world.leads.stored[answer.lead_id]
    assert list(lead.sold_to) == ["2"]
    assert [1, f"{DAILY_CAP} (at sale)"] in lead.decisions and [2, "sold"] in lead.decisions


def test_a_lead_every_partner_refuses_ends_unsold_and_unmatched(world: World) -> None:
    world.sales.refusals.update({1: DAILY_CAP, 2: DAILY_CAP, 3: DAILY_CAP})
    answer = submit(world, "full")
    assert answer.status == "Unmatched"
    assert world.leads.stored[answer.lead_id].status == UNSOLD
    assert not world.queues.sent


@pytest.mark.parametrize("why", [LOST, TIMES_SOLD])
def test_a_sale_refused_because_the_lead_moved_on_stops_selling(world: World, why: str) -> None:
    world.sales.refusals[2] = why
    answer = submit(world, "full", Allowed_Times_Sold="3")
    assert list(world.leads.stored[answer.lead_id].sold_to) == ["1"]
    assert answer.matches == 1


def test_a_sale_whose_answer_was_lost_counts_when_the_lead_shows_it(world: World) -> None:
    world.sales.applied_then_lost.add(1)
    answer = submit(world, "full")
    assert answer.status == "Matched"
    assert world.leads.stored[answer.lead_id].status == SOLD


def test_a_sale_that_fails_with_nothing_sold_fails_the_request(world: World) -> None:
    world.sales.unreachable_for.add(1)
    with pytest.raises(ClientError):
        submit(world, "full")
    assert not world.queues.sent


def test_a_sale_that_fails_after_another_answers_the_sale_made(world: World) -> None:
    world.sales.unreachable_for.add(2)
    answer = submit(world, "full", Allowed_Times_Sold="2")
    assert (answer.status, answer.matches) == ("Matched", 1)
    assert world.leads.stored[answer.lead_id].status == SOLD
    # The same when the lead cannot even be read to see whether the sale was made.
    world.leads.failing.calls["get"] = 1
    again = submit(world, "full", Allowed_Times_Sold="2")
    assert (again.status, again.matches) == ("Matched", 1)
    assert world.leads.failing.calls["get"] == 0


def test_a_finish_that_fails_after_a_sale_still_answers_matched(world: World) -> None:
    # Partner 1 buys; the others refuse at the sale, so the lead ends in a write of its own.
    world.sales.refusals[2] = DAILY_CAP
    world.sales.refusals[3] = DAILY_CAP
    world.leads.failing.calls["finish"] = 1
    answer = submit(world, "full", Allowed_Times_Sold="2")
    assert (answer.status, answer.matches) == ("Matched", 1)
    assert world.leads.failing.calls["finish"] == 0  # the finish was tried, and failed


def test_a_finish_that_fails_with_nothing_sold_fails_the_request(world: World) -> None:
    world.sales.refusals.update({1: DAILY_CAP, 2: DAILY_CAP, 3: DAILY_CAP})
    world.leads.failing.calls["finish"] = 1
    with pytest.raises(ClientError):
        submit(world, "full")


def test_sales_the_queue_refuses_stay_in_the_outbox(world: World) -> None:
    world.queues.refuse = True
    answer = submit(world, "full")
    assert answer.status == "Matched"
    assert world.deliveries.cleared == [(answer.lead_id, set())]
    world.queues.refuse = False
    world.queues.failing.calls["enqueue"] = 1
    assert submit(world, "full").status == "Matched"  # unreachable: answered, outbox kept
    assert len(world.deliveries.cleared) == 1


def test_an_outbox_not_cleared_is_left_to_the_sweep(world: World) -> None:
    world.deliveries.failing.calls["clear_outbox"] = 1
    assert submit(world, "full").status == "Matched"


def test_a_post_sells_the_pinged_lead_with_the_merged_data(world: World) -> None:
    ping = submit(world, "ping")
    answer = submit(world, "post", Lead_ID=str(ping.lead_id))
    lead = world.leads.stored[ping.lead_id]
    assert answer.status == "Matched" and lead.status == SOLD
    assert lead.data["Email"] and [e["event"] for e in lead.timeline][-3:] == [
        "post",
        "sale",
        "answer",
    ]


def test_a_post_of_an_unknown_expired_or_other_vendors_lead_is_not_found(world: World) -> None:
    with pytest.raises(LeadNotFound):
        submit(world, "post", Lead_ID="99")
    world.leads.stored[7] = pinged(7, {"Zip": "60610"}, vendor_id="someone-else")
    with pytest.raises(LeadNotFound):
        submit(world, "post", Lead_ID="7")
    world.leads.stored[8] = pinged(8, {"Zip": "60610"}, expires_at=1)
    with pytest.raises(LeadNotFound):
        submit(world, "post", Lead_ID="8")


def test_a_post_repeated_after_the_lead_ended_is_told_the_same(world: World) -> None:
    ping = submit(world, "ping")
    first = submit(world, "post", Lead_ID=str(ping.lead_id))
    again = submit(world, "post", Lead_ID=str(ping.lead_id))
    assert again == first
    assert len(world.sales.made) == 1


def test_a_post_may_not_change_whether_the_lead_is_a_test(world: World) -> None:
    ping = submit(world, "ping", Test_Lead="1")
    with pytest.raises(InvalidRequest, match="Test_Lead"):
        submit(world, "post", Lead_ID=str(ping.lead_id), Test_Lead="0")


def test_a_post_whose_claim_is_lost_answers_what_the_other_post_recorded(world: World) -> None:
    ping = submit(world, "ping")
    world.leads.lose_claims = True
    with pytest.raises(Conflict):  # the other post has not finished within the wait
        submit(world, "post", Lead_ID=str(ping.lead_id))
    world.leads.stored[ping.lead_id].status = SOLD
    world.leads.stored[ping.lead_id].answer = {"status": "Matched", "lead_id": ping.lead_id}
    assert submit(world, "post", Lead_ID=str(ping.lead_id)).status == "Matched"


def test_a_post_beside_a_live_post_is_told_to_retry(world: World) -> None:
    ping = submit(world, "ping")
    lead = world.leads.stored[ping.lead_id]
    lead.status, lead.claim = POSTING, "other"

    def progressing(lead_id: int) -> Any:
        lead.beat += 1  # the other post makes progress while watched
        return type(world.leads).get(world.leads, lead_id)

    world.leads.get = progressing  # type: ignore[method-assign]
    with pytest.raises(Conflict):
        submit(world, "post", Lead_ID=str(ping.lead_id))


def test_a_post_takes_over_a_lead_whose_post_died_and_keeps_its_sales(world: World) -> None:
    ping = submit(world, "ping", Allowed_Times_Sold="2")
    lead = world.leads.stored[ping.lead_id]
    lead.status, lead.claim, lead.sold_to = POSTING, "dead", {"1": Decimal(30)}
    answer = submit(world, "post", Lead_ID=str(ping.lead_id), Allowed_Times_Sold="2")
    assert (answer.status, answer.matches) == ("Matched", 2)
    assert sorted(world.leads.stored[ping.lead_id].sold_to) == ["1", "2"]
    assert [p for _, p, _ in world.sales.made] == [2]  # the earlier sale is not made again


def test_an_earlier_sale_to_a_partner_paused_since_still_counts(world: World) -> None:
    ping = submit(world, "ping")
    lead = world.leads.stored[ping.lead_id]
    lead.status, lead.claim, lead.sold_to = POSTING, "dead", {"1": Decimal(30)}
    world.partners = Partners.of(buyer(1, 30, active=False), buyer(2, 20))
    answer = submit(world, "post", Lead_ID=str(ping.lead_id))
    assert answer.status == "Matched"
    assert list(world.leads.stored[ping.lead_id].sold_to) == ["1"]  # allowed once: sold


def test_selected_hashes_must_be_of_the_type_the_ping_asked_for(world: World) -> None:
    ping = submit(world, "ping", Return_Hash_Type="md5", Return_Hash_Value_Type="email")
    with pytest.raises(InvalidRequest, match="Selected_Partner_Hash"):
        exchange.post(
            world.vendors.by["v1"],
            {"Lead_ID": ping.lead_id},
            {},
            selected=[HashedValue("phone", "sha1", "x")],
            stores=world.stores(),
        )


def test_a_repeated_full_request_is_the_earlier_lead(world: World) -> None:
    fields = complete("full", Key=KEY)
    stores = world.stores()
    first = exchange.submit(Request(dict(fields)), stores=stores)
    again = exchange.submit(Request(dict(fields)), stores=stores)
    assert again == first and len(world.sales.made) == 1


def test_an_idempotency_key_sent_again_with_another_lead_is_refused(world: World) -> None:
    stores = world.stores()
    exchange.submit(request("full"), idempotency_key="k-1", stores=stores)
    with pytest.raises(InvalidRequest, match="Idempotency-Key"):
        exchange.submit(request("full"), idempotency_key="k-1", stores=stores)
    with pytest.raises(InvalidRequest, match="Idempotency-Key"):
        exchange.submit(request("full"), idempotency_key="has space", stores=stores)


def test_a_repeat_of_a_request_that_died_unanswered_sells_the_lead(world: World) -> None:
    fields = complete("full", Key=KEY)
    stores = world.stores()
    world.sales.refusals.update({1: DAILY_CAP, 2: DAILY_CAP, 3: DAILY_CAP})
    first = exchange.submit(Request(dict(fields)), stores=stores)
    lead = world.leads.stored[first.lead_id]
    lead.status, lead.unanswered = UNSOLD, True  # as the sweep ends a request that died
    world.sales.refusals.clear()
    again = exchange.submit(Request(dict(fields)), stores=stores)
    assert (again.lead_id, again.status) == (first.lead_id, "Matched")


def test_a_body_with_problems_and_a_missing_wrong_or_contrary_mode_are_refused(
    world: World,
) -> None:
    stores = world.stores()
    fields = complete("ping", Key=KEY)
    with pytest.raises(InvalidRequest, match="a key sent twice"):
        exchange.submit(Request(dict(fields), problems=("a key sent twice",)), stores=stores)
    with pytest.raises(InvalidRequest, match="Required value Mode is missing"):
        exchange.submit(Request(complete("ping", Key=KEY, Mode="")), stores=stores)
    with pytest.raises(InvalidRequest, match="Invalid value for Mode"):
        exchange.submit(Request(complete("ping", Key=KEY, Mode="sell")), stores=stores)
    with pytest.raises(InvalidRequest, match="this is the /post endpoint"):
        exchange.submit(Request(dict(fields)), path_mode="post", stores=stores)
    told = exchange.submit(Request(complete("ping", Key=KEY, Mode="")), "ping", stores=stores)
    assert told.status == "Matched"


def _changing(world: World, lead_id: int, after: int, **changes: Any) -> None:
    """The lead changes as another request would, once it has been read `after` times."""
    reads = iter(range(10_000))
    real = type(world.leads).get

    def get(lead_id_: int) -> Any:
        if lead_id_ == lead_id and next(reads) == after:
            for name, value in changes.items():
                setattr(world.leads.stored[lead_id], name, value)
        return real(world.leads, lead_id_)

    world.leads.get = get  # type: ignore[method-assign]


def test_a_post_beside_one_that_finishes_is_told_its_answer(world: World) -> None:
    ping = submit(world, "ping")
    lead = world.leads.stored[ping.lead_id]
    lead.status, lead.claim = POSTING, "other"
    finished = {"status": "Matched", "lead_id": ping.lead_id, "matches": 1}
    _changing(world, ping.lead_id, 1, status=SOLD, answer=finished)
    assert submit(world, "post", Lead_ID=str(ping.lead_id)).matches == 1
    assert not world.sales.made


def test_a_post_beside_one_that_gave_the_lead_back_sells_it(world: World) -> None:
    ping = submit(world, "ping")
    lead = world.leads.stored[ping.lead_id]
    lead.status, lead.claim = POSTING, "other"
    _changing(world, ping.lead_id, 1, status=PINGED, claim=None)
    assert submit(world, "post", Lead_ID=str(ping.lead_id)).status == "Matched"
    assert world.leads.stored[ping.lead_id].status == SOLD


def test_a_post_that_changes_what_matching_reads_is_matched_again(world: World) -> None:
    world.partners = Partners.of(buyer(1, 30, filters={"min_score": 5}))
    ping = submit(world, "ping", Score="3")
    assert ping.status == "Unmatched"
    answer = submit(world, "post", Lead_ID=str(ping.lead_id), Score="7")
    assert answer.status == "Matched"
    events = [e["event"] for e in world.leads.stored[ping.lead_id].timeline]
    assert "rematch" in events


def test_a_repeated_full_request_beside_the_first_gets_its_answer_or_takes_over(
    world: World,
) -> None:
    fields = complete("full", Key=KEY)
    stores = world.stores()
    first = exchange.submit(Request(dict(fields)), stores=stores)
    lead = world.leads.stored[first.lead_id]
    lead.status, lead.claim, lead.answer = POSTING, "first", {}
    done = {"status": "Matched", "lead_id": first.lead_id, "matches": 5}
    _changing(world, first.lead_id, 1, status=SOLD, answer=done)
    assert exchange.submit(Request(dict(fields)), stores=stores).matches == 5
    # The first request died holding the lead: the repeat takes it over and sells it.
    lead = world.leads.stored[first.lead_id]
    lead.status, lead.claim, lead.answer, lead.sold_to = POSTING, "dead", {}, {}
    again = exchange.submit(Request(dict(fields)), stores=stores)
    assert (again.lead_id, again.status) == (first.lead_id, "Matched")
    assert world.leads.stored[first.lead_id].status == SOLD


@pytest.mark.parametrize(
    ("margin", "margin_type", "best"),
    [("2.50", "amount", "45.00"), ("10", "percent", "45.00"), ("25", "amount", "5.00")],
)
def test_on_dynamic_pricing_the_best_price_is_the_buyers_prices_net_of_the_margin(
    world: World, margin: str, margin_type: str, best: str
) -> None:
    world.vendors.by["v1"] = vendor(dynamic_pricing=True, margin=margin, margin_type=margin_type)
    answer = submit(world, "ping", Return_Best_Price="1", Allowed_Times_Sold="2", Cost="")
    assert answer.price == Decimal(best)  # the best two of 30, 20 and 10, each net
    world.vendors.by["v1"] = vendor()
    assert submit(world, "ping", Return_Best_Price="1").price == Decimal(5)  # the vendor's cost


@pytest.mark.parametrize("mode", ["ping", "full"])
@pytest.mark.parametrize("dynamic", [False, True])
def test_an_unmatched_answer_carries_no_price(world: World, mode: str, dynamic: bool) -> None:
    # Regression (review): Mode=ping, Cost=25, Return_Best_Price=1, nothing matching, was
    # answered <status>Unmatched</status>...<price>25</price>: a price nobody offered. The spec
    # returns a price on success only (its Unmatched example has none).
    from pingpost.responses import answer_xml

    world.vendors.by["v1"] = vendor(dynamic_pricing=dynamic)
    world.partners = Partners.of()
    answer = submit(world, mode, Cost="25", Return_Best_Price="1")
    assert (answer.status, answer.price) == ("Unmatched", None)
    assert b"<price>" not in answer_xml(answer)
    world.partners = Partners.of(buyer(1, 30))
    matched = submit(world, mode, Cost="25", Return_Best_Price="1")
    assert matched.status == "Matched" and matched.price is not None
    # A lead matched but bought by nobody: the partner refused at sale (its cap, say)
    world.sales.refusals[1] = DAILY_CAP
    ping = submit(world, "ping", Cost="25", Return_Best_Price="1")
    unsold = (
        submit(world, "full", Cost="25", Return_Best_Price="1")
        if mode == "full"
        else submit(world, "post", Lead_ID=str(ping.lead_id))
    )
    assert (unsold.status, unsold.price) == ("Unmatched", None)

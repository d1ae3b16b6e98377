"""The deliver and retry functions' paths with their stores in memory.

`delivery.deliver` takes one queued sale; `redrive.run` redrives dead letters, parks the
hopeless and sweeps the outbox. The integration tests run them against the embedded AWS
endpoint and real partners; here each store's answer is set up directly.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from pingpost import delivery, redrive
from pingpost.delivery import Attempt, Permanent, Undelivered
from pingpost.models import PINGED, POSTING, SOLD, UNSOLD
from pingpost.store.queues import DeadLetter, Delivery
from tests.stores import Partners, World, buyer, pinged


@pytest.fixture
def world() -> World:
    """Lead 1, sold to partner 7 whose endpoint is set."""
    out = World()
    out.partners = Partners.of(buyer(7, delivery={"url": "https://partner.example/leads"}))
    out.leads.stored[1] = pinged(1, {"Email": "a@example.com"}, status=SOLD)
    return out


SENT: list[int] = []  # the lead of each attempt made


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Attempt]:
    """What the partner answers each attempt (first in, first out); SENT records each attempt."""
    answers: list[Attempt] = []
    SENT.clear()

    def send(partner: Any, lead_id: int, data: Any, *, test: bool, stores: Any) -> Attempt:
        SENT.append(lead_id)
        return answers.pop(0)

    monkeypatch.setattr(delivery, "send", send)
    return answers


def test_a_delivered_sale_is_recorded_delivered(world: World, sent: list[Attempt]) -> None:
    sent.append(Attempt(True, "HTTP 200"))
    assert delivery.deliver(Delivery(1, 7), world.stores()) == "delivered"
    assert world.deliveries.records[1, 7] == {"state": "delivered", "detail": "HTTP 200"}


def test_a_failed_attempt_is_queued_again_and_the_message_retried(
    world: World, sent: list[Attempt]
) -> None:
    sent.append(Attempt(False, "HTTP 503"))
    with pytest.raises(Undelivered, match="HTTP 503"):
        delivery.deliver(Delivery(1, 7), world.stores())
    assert world.deliveries.records[1, 7]["state"] == "queued"


def test_a_url_the_exchange_may_not_call_is_parked_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kw: Any) -> Attempt:
        raise Permanent("https is required")

    monkeypatch.setattr(delivery, "send", refuse)
    assert delivery.deliver(Delivery(1, 7), world.stores()) == "parked"
    assert world.deliveries.records[1, 7]["state"] == "failed"


def test_a_defect_while_sending_queues_the_sale_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kw: Any) -> Attempt:
        raise KeyError("a defect")

    monkeypatch.setattr(delivery, "send", broken)
    with pytest.raises(Undelivered, match="KeyError"):
        delivery.deliver(Delivery(1, 7), world.stores())
    assert world.deliveries.records[1, 7]["state"] == "queued"


def test_a_sale_delivered_or_parked_already_is_not_sent_again(
    world: World, sent: list[Attempt]
) -> None:
    for state in ("delivered", "failed"):
        world.deliveries.records[1, 7] = {"state": state}
        assert delivery.deliver(Delivery(1, 7), world.stores()) == state
    assert SENT == []


def test_a_sale_another_worker_is_sending_comes_back_later(world: World) -> None:
    world.deliveries.busy = True
    with pytest.raises(Undelivered, match="another worker"):
        delivery.deliver(Delivery(1, 7), world.stores())


def test_an_unknown_lead_or_partner_lets_the_message_go(world: World) -> None:
    assert delivery.deliver(Delivery(2, 7), world.stores()) == "unknown lead or partner"
    assert delivery.deliver(Delivery(1, 8), world.stores()) == "unknown lead or partner"
    assert not world.deliveries.records


def test_a_lost_status_write_is_retried_before_the_message_is_acknowledged(
    world: World, sent: list[Attempt], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery.time, "sleep", lambda seconds: None)
    sent.append(Attempt(True, "HTTP 200"))
    world.deliveries.failing.calls["settle"] = 2
    assert delivery.deliver(Delivery(1, 7), world.stores()) == "delivered"
    sent.append(Attempt(True, "HTTP 200"))
    world.deliveries.records.clear()
    world.deliveries.failing.calls["settle"] = 5  # every retry: the message is not acknowledged
    with pytest.raises(Exception, match="InternalServerError"):
        delivery.deliver(Delivery(1, 7), world.stores())


def test_headers_kept_in_parameter_store_are_sent_and_missing_ones_fail_the_attempt(
    world: World,
) -> None:
    partner = buyer(
        7, delivery={"url": "https://partner.example/leads", "secret_headers": ["X-Api-Key"]}
    )
    attempt = delivery.send(partner, 1, {}, test=False, stores=world.stores())
    assert (attempt.ok, attempt.detail) == (False, "headers X-Api-Key not found in Parameter Store")


def letter(lead_id: int, partner_id: int, redrives: int | None = None) -> DeadLetter:
    body = json.dumps({"lead_id": lead_id, "partner_id": partner_id})
    return DeadLetter(f"r{lead_id}-{partner_id}", body, None if redrives is None else str(redrives))


def test_a_dead_letter_is_redriven_with_backoff_until_the_last_round(world: World) -> None:
    world.queues.dead = [letter(1, 7), letter(1, 8, redrives=1)]
    report = redrive.run(5, world.stores())
    assert report.redriven == 2 and not world.queues.dead
    delays = [(d.redrives, delay) for d, delay in world.queues.sent]
    assert delays == [(1, redrive.backoff(0)), (2, redrive.backoff(1))]
    assert redrive.backoff(1) == 2 * redrive.backoff(0)


def test_a_dead_letter_the_queue_refuses_stays_for_the_next_run(world: World) -> None:
    world.queues.dead = [letter(1, 7)]
    world.queues.refuse = True
    report = redrive.redrive(redrive.Report(), 0, world.stores())
    assert report is None and world.queues.dead  # the deadline passed: nothing taken
    redrive._settle(world.stores(), world.queues.dead[0], found := redrive.Report())
    assert found.redriven == 0 and len(world.queues.dead) == 1


def test_after_the_last_round_the_sale_is_parked(world: World) -> None:
    from pingpost.config import settings

    world.queues.dead = [letter(1, 7, redrives=settings().max_redrives)]
    report = redrive.run(5, world.stores())
    assert report.parked == 1 and not world.queues.dead
    assert world.deliveries.records[1, 7]["state"] == "failed"


def test_parking_waits_for_a_worker_that_is_sending_the_sale(world: World) -> None:
    from pingpost.config import settings

    last = letter(1, 7, redrives=settings().max_redrives)
    world.deliveries.park_refused = True
    world.deliveries.records[1, 7] = {"state": "sending"}
    world.queues.dead = [last]
    redrive._settle(world.stores(), last, report := redrive.Report())
    assert report.parked == 0 and world.queues.dead == [last]
    world.deliveries.records[1, 7] = {"state": "delivered"}  # it was delivered meanwhile
    redrive._settle(world.stores(), last, report)
    assert report.parked == 0 and not world.queues.dead


def test_an_unreadable_dead_letter_is_counted_and_dropped(world: World) -> None:
    world.queues.dead = [DeadLetter("r", "not json", None)]
    report = redrive.run(5, world.stores())
    assert report.unreadable == 1 and not world.queues.dead


def test_the_sweep_queues_sales_left_in_the_outbox(world: World) -> None:
    world.deliveries.outbox[1] = {7}
    report = redrive.run(5, world.stores())
    assert report.swept == 1 and [d.partner_id for d, _ in world.queues.sent] == [7]
    assert world.deliveries.cleared == [(1, {7})]


def test_the_sweep_leaves_what_the_queue_refuses(world: World) -> None:
    world.deliveries.outbox[1] = {7}
    world.queues.refuse = True
    report = redrive.run(5, world.stores())
    assert report.swept == 0 and world.deliveries.outbox == {1: {7}}


def test_the_sweep_queues_every_queued_delivery_of_a_lead_sold_before_they_were_tracked(
    world: World,
) -> None:
    world.leads.stored[1].deliveries = {"7": {"state": "queued"}, "8": {"state": "delivered"}}
    world.deliveries.outbox[1] = set()
    redrive.sweep(report := redrive.Report(), world.stores())
    assert report.swept == 1 and [d.partner_id for d, _ in world.queues.sent] == [7]


@pytest.mark.parametrize(
    ("sold", "answer", "status"),
    [
        ({"7": Decimal(20)}, {"status": "Matched"}, SOLD),  # sold: recorded sold
        ({}, {"status": "Matched"}, PINGED),  # a ping's lead: awaits its post again
        ({}, {}, UNSOLD),  # a full request's lead: unsold, unanswered
    ],
)
def test_a_post_that_died_holding_its_lead_is_ended_on_the_second_look(
    world: World, sold: dict[str, Decimal], answer: dict[str, Any], status: str
) -> None:
    lead = world.leads.stored[1]
    lead.status, lead.claim, lead.beat, lead.sold_to, lead.answer = POSTING, "t", 1, sold, answer
    world.deliveries.outbox[1] = {7} if sold else set()
    first = redrive.run(5, world.stores())
    assert first.abandoned == 0 and world.leads.watched == [1]
    second = redrive.run(5, world.stores())
    assert second.abandoned == 1 and world.leads.stored[1].status == status
    assert second.swept == (1 if sold else 0)


def test_a_post_that_progressed_since_the_first_look_is_left_alone(world: World) -> None:
    lead = world.leads.stored[1]
    lead.status, lead.claim, lead.beat = POSTING, "t", 1
    world.deliveries.outbox[1] = set()
    redrive.run(5, world.stores())
    world.leads.stored[1].beat = 2  # a sale since
    report = redrive.run(5, world.stores())
    assert report.abandoned == 0 and world.leads.stored[1].status == POSTING

"""Deliveries against the embedded AWS endpoint and local partners: nothing lost, nothing twice."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.conftest import EVENTS, demo_seed, local_function
from tests.leads import complete

# Each test runs with the caches off and with them as deployed (tests/conftest.py: caches).
pytestmark = pytest.mark.usefixtures("caches")


@pytest.fixture
def partner() -> Iterator[Any]:
    from pingpost_local.partner import DemoPartner

    with DemoPartner() as good:
        yield good


@pytest.fixture
def sales(aws: str, partner: Any) -> Iterator[Any]:
    """Install partners that deliver to local endpoints; empty both queues around each test."""
    from pingpost.store import partners as store
    from pingpost_local import seed

    queues = ("DELIVERY_QUEUE_URL", "DEAD_LETTER_QUEUE_URL")

    def install(*documents: dict[str, Any]) -> None:
        table = os.environ["PARTNERS_TABLE"]
        client = boto3.client("dynamodb")
        for item in client.scan(TableName=table, ProjectionExpression="partner_id")["Items"]:
            client.delete_item(TableName=table, Key=item)
        seed.apply(seed.Seed.model_validate({"partners": list(documents)}))
        store.forget()  # the partners deleted above, behind the versions' back

    demo_seed()  # the demo vendors
    for name in queues:
        while receive(name, wait=0):
            pass
    yield install
    for name in queues:
        while receive(name, wait=0):
            pass
    demo_seed()


def buyer(id: int, url: str, price: float = 30, **delivery: Any) -> dict[str, Any]:
    return {
        "id": id,
        "price": price,
        "company": f"Buyer {id}",
        "filters": {"products": ["Gutters"]},
        "delivery": {"url": url, "timeout": 2, **delivery},
    }


def sell(**changes: str) -> int:
    from pingpost import exchange
    from pingpost.decoding import Request

    answer = exchange.submit(
        Request(complete("full", Home_Improvement_Product="Gutters", **changes))
    )
    assert answer.status == "Matched"
    return answer.lead_id


def receive(queue: str = "DELIVERY_QUEUE_URL", most: int = 10, wait: int = 1) -> list[Any]:
    """Take messages off a queue (the tests hand them to the handler themselves)."""
    sqs = boto3.client("sqs")
    response = sqs.receive_message(
        QueueUrl=os.environ[queue],
        MaxNumberOfMessages=most,
        MessageAttributeNames=["All"],
        AttributeNames=["All"],
        WaitTimeSeconds=wait,
    )
    messages = response.get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=os.environ[queue], ReceiptHandle=message["ReceiptHandle"])
    return messages


def deliver(messages: list[Any]) -> dict[str, Any]:
    """Invoke the deliver function as Lambda's SQS poller would, with these messages."""
    from pingpost_local.sqs import sqs_event

    arn = boto3.client("sqs").get_queue_attributes(
        QueueUrl=os.environ["DELIVERY_QUEUE_URL"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    function = local_function("DeliverFunction")
    result: dict[str, Any] = function.invoke(sqs_event(messages, arn))
    return result


def record(lead_id: int, partner_id: int) -> dict[str, Any]:
    from pingpost.store import deliveries

    found = deliveries.state(lead_id, partner_id)
    assert found is not None
    return found


def test_a_sale_is_delivered_once_with_its_idempotency_key(sales: Any, partner: Any) -> None:
    from pingpost.store import leads

    sales(buyer(960, partner.url + "/leads"))
    lead_id = sell()
    messages = receive()
    assert [json.loads(m["Body"]) for m in messages] == [{"lead_id": lead_id, "partner_id": 960}]
    assert deliver(messages) == {"batchItemFailures": []}
    assert partner.accepted == {f"{lead_id}-960": 1}
    assert json.loads(partner.bodies[f"{lead_id}-960"])["Lead_ID"] == str(lead_id)
    assert record(lead_id, 960)["state"] == "delivered"
    lead = leads.get(lead_id)
    assert lead is not None
    assert any(e["event"] == "delivery" and "HTTP 200" in e["detail"] for e in lead.timeline)
    # The same message again (SQS delivers at least once): the partner is not called again.
    assert deliver(messages) == {"batchItemFailures": []}
    assert partner.accepted == {f"{lead_id}-960": 1}


def test_one_bad_message_in_a_batch_of_ten_is_the_only_one_retried(
    sales: Any, partner: Any
) -> None:
    from pingpost_local.partner import DemoPartner

    with DemoPartner(failure_rate=1.0) as broken:
        sales(buyer(970, partner.url), buyer(971, broken.url, price=35))
        # 971 pays more: it gets the first lead; then it is skipped so the rest go to 970.
        first = sell()
        rest = [sell(Skip_Partner_ID="971") for _ in range(9)]
        messages: list[Any] = []
        while len(messages) < 10 and (got := receive(most=10 - len(messages))):
            messages += got
        assert len(messages) == 10
        result = deliver(messages)
    failed = [m for m in messages if json.loads(m["Body"])["partner_id"] == 971]
    assert result == {"batchItemFailures": [{"itemIdentifier": failed[0]["MessageId"]}]}
    assert sorted(partner.accepted) == sorted(f"{lead}-970" for lead in rest)
    assert record(first, 971)["state"] == "queued"
    assert record(first, 971)["detail"] == "HTTP 500"


def test_a_crash_after_the_partners_answer_does_not_deliver_twice(
    sales: Any, partner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pingpost import delivery
    from pingpost.store import deliveries

    sales(buyer(980, partner.url))
    lead_id = sell()
    messages = receive()
    real_settle = deliveries.settle

    def killed(*args: Any) -> bool:
        raise SystemExit("the Lambda is killed between the answer and the status update")

    monkeypatch.setattr(deliveries, "settle", killed)
    with pytest.raises(SystemExit):
        delivery.deliver(delivery.Delivery(lead_id, 980))
    monkeypatch.setattr(deliveries, "settle", real_settle)
    assert partner.accepted == {f"{lead_id}-980": 1}
    assert record(lead_id, 980)["state"] == "sending"
    # While the dead worker's lease runs, a redelivered message does not send again.
    assert deliver(messages)["batchItemFailures"][0]["itemIdentifier"] == messages[0]["MessageId"]
    assert partner.accepted == {f"{lead_id}-980": 1}
    # Once it has run out, the retry sends with the same idempotency key, and the partner
    # (which counts by that key) has the sale once.
    later = delivery._now_ms() + 60_000
    monkeypatch.setattr(delivery, "_now_ms", lambda: later)
    assert deliver(messages) == {"batchItemFailures": []}
    assert list(partner.accepted) == [f"{lead_id}-980"]
    assert record(lead_id, 980)["state"] == "delivered"
    assert record(lead_id, 980)["attempts"] == 2


def test_dead_letters_are_redriven_with_backoff_then_parked(
    sales: Any, partner: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from pingpost import redrive
    from pingpost.config import settings
    from pingpost.store.queues import Delivery
    from pingpost_local.cli import main

    sales(buyer(990, partner.url))
    lead_id = sell()
    receive()  # the first delivery message: as if it failed maxReceiveCount times
    dead = os.environ["DEAD_LETTER_QUEUE_URL"]
    sqs = boto3.client("sqs")

    def dead_letter(redrives: int) -> None:
        sqs.send_message(
            QueueUrl=dead,
            MessageBody=Delivery(lead_id, 990).body(),
            MessageAttributes={"redrives": {"DataType": "Number", "StringValue": str(redrives)}},
        )

    dead_letter(0)
    report = redrive.run(10)
    assert (report.redriven, report.parked) == (1, 0)
    assert redrive.backoff(0) == settings().redrive_base_seconds
    assert redrive.backoff(10) == 900
    assert receive("DEAD_LETTER_QUEUE_URL") == []
    dead_letter(settings().max_redrives)
    report = redrive.run(10)
    assert (report.redriven, report.parked) == (0, 1)
    assert record(lead_id, 990)["state"] == "failed"
    assert record(lead_id, 990)["detail"].startswith("parked after")
    main(["deliveries", "failed"])
    assert f"lead {lead_id}  partner 990" in capsys.readouterr().out


def test_a_redriven_message_comes_back_with_its_count(sales: Any, partner: Any) -> None:
    from pingpost import redrive
    from pingpost.config import settings

    sales(buyer(991, partner.url))
    lead_id = sell()
    receive()
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["DEAD_LETTER_QUEUE_URL"],
        MessageBody=json.dumps({"lead_id": lead_id, "partner_id": 991}),
    )
    quick = settings()._replace(redrive_base_seconds=0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(redrive, "settings", lambda: quick)
        redrive.run(10)
    again = receive()
    assert again[0]["MessageAttributes"]["redrives"]["StringValue"] == "1"
    assert deliver(again) == {"batchItemFailures": []}
    assert partner.accepted == {f"{lead_id}-991": 1}


def test_the_deliver_event_of_events_delivers_each_sale_it_names(sales: Any, partner: Any) -> None:
    # Given two sales to the partner events/deliver-sqs.json names, and that file (what
    # `sam local invoke DeliverFunction` sends) naming their leads
    sales(buyer(9001, partner.url + "/leads"))
    lead_ids = [sell(), sell()]
    while receive(wait=0):  # the file stands for the messages the sales queued
        pass
    event = json.loads((EVENTS / "deliver-sqs.json").read_text())
    for message, lead_id in zip(event["Records"], lead_ids, strict=True):
        body = json.loads(message["body"])
        assert body["partner_id"] == 9001
        message["body"] = json.dumps(body | {"lead_id": lead_id})

    # When the deliver function takes the event
    result = local_function("DeliverFunction").invoke(event)

    # Then both are delivered, the redriven one (its "redrives" attribute) too
    assert result == {"batchItemFailures": []}
    assert partner.accepted == {f"{lead_id}-9001": 1 for lead_id in lead_ids}
    assert [record(lead_id, 9001)["state"] for lead_id in lead_ids] == ["delivered"] * 2


def test_the_retry_event_of_events_redrives_the_dead_letters(sales: Any, partner: Any) -> None:
    from pingpost.store.queues import Delivery

    # Given a sale whose delivery message is among the dead letters
    sales(buyer(992, partner.url))
    lead_id = sell()
    receive()
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["DEAD_LETTER_QUEUE_URL"], MessageBody=Delivery(lead_id, 992).body()
    )

    # When the retry function takes events/retry-schedule.json (EventBridge's scheduled event)
    event = json.loads((EVENTS / "retry-schedule.json").read_text())
    report = local_function("RetryFunction").invoke(event)

    # Then it redrove that message, and nothing was left among the dead letters
    assert (report["redriven"], report["parked"]) == (1, 0)
    assert receive("DEAD_LETTER_QUEUE_URL", wait=0) == []


def test_sales_whose_messages_never_reached_the_queue_are_swept(
    sales: Any, partner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from pingpost import redrive
    from pingpost.config import settings
    from pingpost.store import deliveries, queues

    sales(buyer(995, partner.url))

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "ServiceUnavailable"}}, "SendMessageBatch")

    monkeypatch.setattr(queues, "enqueue", unavailable)
    lead_id = sell()  # the sale stands: the publisher is told Matched
    monkeypatch.undo()
    assert receive() == []
    assert lead_id in deliveries.in_outbox(delivery_now() + 1)
    quick = settings()._replace(outbox_grace_seconds=0)
    monkeypatch.setattr(redrive, "settings", lambda: quick)
    assert redrive.run(10).swept == 1
    assert lead_id not in deliveries.in_outbox(delivery_now() + 1)
    assert deliver(receive()) == {"batchItemFailures": []}
    assert partner.accepted == {f"{lead_id}-995": 1}


def delivery_now() -> int:
    from pingpost import delivery

    return delivery._now_ms()


def test_a_url_the_exchange_may_not_call_is_parked_at_once(sales: Any) -> None:
    sales(buyer(999, "http://buyer.example/leads"))
    lead_id = sell()
    assert deliver(receive()) == {"batchItemFailures": []}
    assert record(lead_id, 999)["state"] == "failed"
    assert "not allowed" in record(lead_id, 999)["detail"]


def test_a_partner_whose_format_cannot_carry_the_lead_has_the_sale_parked_with_the_reason(
    sales: Any,
) -> None:
    # Building the body raised outside the attempt's handling: the sale stayed "sending".
    sales(buyer(998, "https://buyer.example/leads", format="xml", fields={"Zip": "postal code"}))
    lead_id = sell()
    assert deliver(receive()) == {"batchItemFailures": []}
    assert record(lead_id, 998)["state"] == "failed"
    assert record(lead_id, 998)["detail"].startswith("the lead could not be written as xml")


def test_an_attempt_that_breaks_queues_the_sale_again(
    sales: Any, partner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pingpost import delivery

    sales(buyer(997, partner.url + "/leads"))
    lead_id = sell()
    messages = receive()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a defect")

    monkeypatch.setattr(delivery, "send", broken)
    assert deliver(messages) == {
        "batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]
    }
    assert (record(lead_id, 997)["state"], record(lead_id, 997)["detail"]) == (
        "queued",
        "error: RuntimeError",
    )
    monkeypatch.undo()
    assert deliver(messages) == {"batchItemFailures": []}
    assert record(lead_id, 997)["state"] == "delivered"


def test_a_partners_secret_headers_are_kept_in_parameter_store_not_in_the_partners_table(
    sales: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The functions that match leads read the whole partners table: its X-Api-Key values were
    # theirs to read.
    from pingpost import outbound

    sales(buyer(996, "https://buyer.example/leads", headers={"X-Api-Key": "s3cret-996"}))
    table = boto3.client("dynamodb").scan(TableName=os.environ["PARTNERS_TABLE"])["Items"]
    assert "s3cret-996" not in json.dumps(table)
    assert json.dumps(table).count('"X-Api-Key"') == 1  # its name, under secret_headers
    name = f"{os.environ['PARTNER_SECRETS_PATH']}/996/headers"
    stored = boto3.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert (stored["Type"], json.loads(stored["Value"])) == (
        "SecureString",
        {"X-Api-Key": "s3cret-996"},
    )
    sent: dict[str, str] = {}

    def call(method: str, url: str, body: bytes, headers: dict[str, str], *_: Any) -> Any:
        sent.update(headers)
        return 200, b"ok"

    monkeypatch.setattr(outbound, "call", call)
    lead_id = sell()
    assert deliver(receive()) == {"batchItemFailures": []}
    assert record(lead_id, 996)["state"] == "delivered"
    assert sent["X-Api-Key"] == "s3cret-996"
    # Seeded again without headers: the secret goes too.
    sales(buyer(996, "https://buyer.example/leads"))
    with pytest.raises(boto3.client("ssm").exceptions.ParameterNotFound):
        boto3.client("ssm").get_parameter(Name=name, WithDecryption=True)


def test_a_bidders_bid_and_post_headers_are_kept_in_parameter_store_each_apart(
    sales: Any,
) -> None:
    from pingpost.store import secrets

    endpoints = {
        "bid": {"url": "https://buyer.example/ping", "headers": {"Authorization": "Bearer b-1"}},
        "post": {"url": "https://buyer.example/post", "headers": {"X-Post-Key": "p-2"}},
    }
    sales(buyer(997, "https://buyer.example/leads", headers={"X-Api-Key": "d-3"}) | endpoints)
    table = json.dumps(boto3.client("dynamodb").scan(TableName=os.environ["PARTNERS_TABLE"]))
    assert "b-1" not in table and "p-2" not in table and "d-3" not in table
    ssm = boto3.client("ssm")
    path = f"{os.environ['PARTNER_SECRETS_PATH']}/997"
    kept = {
        name: json.loads(
            ssm.get_parameter(Name=f"{path}/{name}", WithDecryption=True)["Parameter"]["Value"]
        )
        for name in ("headers", "bid-headers", "post-headers")
    }
    assert kept == {
        "headers": {"X-Api-Key": "d-3"},
        "bid-headers": {"Authorization": "Bearer b-1"},
        "post-headers": {"X-Post-Key": "p-2"},
    }
    assert secrets.headers(997, "bid") == {"Authorization": "Bearer b-1"}
    # Seeded again without bidding: its bid and post secrets go, its delivery's stay
    sales(buyer(997, "https://buyer.example/leads", headers={"X-Api-Key": "d-3"}))
    assert ssm.get_parameter(Name=f"{path}/headers", WithDecryption=True)["Parameter"]
    for name in ("bid-headers", "post-headers"):
        with pytest.raises(ssm.exceptions.ParameterNotFound):
            ssm.get_parameter(Name=f"{path}/{name}")
    stored = boto3.client("dynamodb").get_item(
        TableName=os.environ["PARTNERS_TABLE"], Key={"partner_id": {"N": "997"}}
    )["Item"]
    assert "bid" not in stored and "post" not in stored  # a partner that does not bid

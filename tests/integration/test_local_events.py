"""The local runner's SQS pollers and schedulers against moto's server mode."""

import base64
import contextlib
import hashlib
import http.client
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel, SqsModel
from mypy_boto3_sqs.client import SQSClient

from pingpost_local.functions import LocalFunction, local_function
from pingpost_local.resources import create_resources
from pingpost_local.schedules import (
    Scheduler,
    ScheduleSource,
    rate_seconds,
    scheduled_event,
    schedules,
)
from pingpost_local.sqs import QueuePoller, SqsSource, messages_to_keep, sqs_sources
from pingpost_local.template import load_template, parameter_values
from tests.conftest import _dynamodb, _sqs, serve_in_thread

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
EVENTS_TEMPLATE = REPO / "tests" / "fixtures" / "events" / "template.yaml"
# Every wait in these tests gives up after this long; none needs more than a few seconds.
DEADLINE_SECONDS = 30.0


QUEUES = ("WorkQueue", "WorkDeadLetterQueue", "PlainQueue")


def _fresh_queues(endpoint: str) -> dict[str, str]:
    """The fixture's queues, new and empty: moto keeps one state per process, whatever the
    endpoint, so messages of an earlier test would still be there."""
    sqs = _sqs(endpoint)
    for name in QUEUES:
        with contextlib.suppress(sqs.exceptions.QueueDoesNotExist):
            sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])
    return create_resources(load_template(EVENTS_TEMPLATE), _dynamodb(endpoint), sqs)


@pytest.fixture
def physical(aws_endpoint: str) -> dict[str, str]:
    return _fresh_queues(aws_endpoint)


@pytest.fixture
def running() -> Iterator[list[QueuePoller | Scheduler]]:
    """Pollers and schedulers a test starts; every one is stopped at teardown."""
    started: list[QueuePoller | Scheduler] = []
    try:
        yield started
    finally:
        for item in started:
            item.stop()


def _function(function_id: str, physical: dict[str, str]) -> LocalFunction:
    template = load_template(EVENTS_TEMPLATE)
    return local_function(
        EVENTS_TEMPLATE, template, function_id, physical, parameter_values(template)
    )


def _received(function: LocalFunction) -> list[Any]:
    """The events the fixture handler recorded (its module-level RECEIVED list)."""
    received: list[Any] = sys.modules[function.load().__module__].RECEIVED
    return received


def _source(function_id: str) -> SqsSource:
    (source,) = (
        source
        for source in sqs_sources(load_template(EVENTS_TEMPLATE))
        if source.function_id == function_id and source.enabled
    )
    return source


def _poller(
    function_id: str,
    physical: dict[str, str],
    endpoint: str,
    running: list[QueuePoller | Scheduler],
    retry_seconds: float | None,
) -> tuple[QueuePoller, LocalFunction]:
    function = _function(function_id, physical)
    poller = QueuePoller.for_source(
        _source(function_id),
        function,
        physical,
        retry_seconds=retry_seconds,
        sqs=_sqs(endpoint),
        quiet=True,
    )
    running.append(poller)
    return poller, function


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def _queue_counts(sqs: SQSClient, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def _send_batch(sqs: SQSClient, url: str, bodies: list[str]) -> list[str]:
    response = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(index), "MessageBody": body} for index, body in enumerate(bodies)],
    )
    assert not response.get("Failed")
    by_entry = {entry["Id"]: entry["MessageId"] for entry in response["Successful"]}
    return [by_entry[str(index)] for index in range(len(bodies))]


# --- reading the template -------------------------------------------------------------------


def test_the_exchange_template_wires_deliveries_and_retries() -> None:
    template = load_template(TEMPLATE)
    (deliveries,) = sqs_sources(template)
    assert deliveries.function_id == "DeliverFunction"
    assert deliveries.queue_id == "DeliveryQueue"
    assert deliveries.batch_size == 10
    assert deliveries.partial_failures
    assert deliveries.enabled
    assert (
        deliveries.describe() == "SQS DeliveryQueue -> DeliverFunction (batch 10, partial failures)"
    )
    (retries,) = schedules(template)
    assert retries.function_id == "RetryFunction"
    assert retries.interval_seconds == 300


def test_sqs_sources_resolve_queues_parameters_and_switches() -> None:
    by_event = {source.event_name: source for source in sqs_sources(load_template(EVENTS_TEMPLATE))}
    work, plain, paused = by_event["Work"], by_event["Plain"], by_event["Paused"]
    assert (work.queue_id, work.batch_size, work.partial_failures) == ("WorkQueue", 10, True)
    # !Ref of a queue names it too; BatchSize comes from a parameter's default.
    assert (plain.queue_id, plain.batch_size, plain.partial_failures) == ("PlainQueue", 5, False)
    assert plain.batching_window_seconds == 1
    assert paused.queue_id is None
    assert paused.queue_arn == "arn:aws:sqs:us-east-1:123456789012:PausedQueue"
    assert not paused.enabled
    assert paused.describe() == "SQS PausedQueue -> PlainFunction (batch 10, disabled)"


def test_schedules_and_rate_expressions() -> None:
    by_event = {source.event_name: source for source in schedules(load_template(EVENTS_TEMPLATE))}
    assert by_event["EveryMinute"].interval_seconds == 60
    assert by_event["EveryMinute"].rule_arn == (
        "arn:aws:events:us-east-1:123456789012:rule/pingpost-local-TickFunctionEveryMinute"
    )
    nightly = by_event["Nightly"]
    assert (nightly.kind, nightly.interval_seconds) == ("ScheduleV2", None)
    assert nightly.rule_arn.startswith("arn:aws:scheduler:us-east-1:123456789012:schedule/default/")
    assert not by_event["Disabled"].enabled

    assert rate_seconds("rate(1 minute)") == 60
    assert rate_seconds("rate(2 hours)") == 7200
    assert rate_seconds("rate(1 day)") == 86400
    assert rate_seconds("cron(0 3 * * ? *)") is None
    for wrong in ("rate(0 minutes)", "rate(5 weeks)", "every 5 minutes"):
        with pytest.raises(ValueError, match="rate"):
            rate_seconds(wrong)


# --- the SQS poller -------------------------------------------------------------------------


def test_sqs_event_has_the_lambda_shape(
    aws_endpoint: str, physical: dict[str, str], running: list[QueuePoller | Scheduler]
) -> None:
    sqs = _sqs(aws_endpoint)
    sent = sqs.send_message(
        QueueUrl=physical["WorkQueue"],
        MessageBody='{"lead_id": 7}',
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "sale"},
            "partner": {"DataType": "Number", "StringValue": "42"},
            "raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    poller, function = _poller("WorkFunction", physical, aws_endpoint, running, None)
    poller.start()
    _wait_until(lambda: len(_received(function)) == 1)
    poller.stop()

    event = _received(function)[0]
    SqsModel.model_validate(event)
    (record,) = event["Records"]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "md5OfMessageAttributes",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["messageId"] == sent["MessageId"]
    assert record["receiptHandle"]
    assert record["body"] == '{"lead_id": 7}'
    assert record["md5OfBody"] == hashlib.md5(b'{"lead_id": 7}').hexdigest()
    assert record["md5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == physical["WorkQueue.Arn"]
    assert record["awsRegion"] == "us-east-1"
    attributes = record["attributes"]
    assert attributes["ApproximateReceiveCount"] == "1"
    assert attributes["SentTimestamp"].isdigit()
    assert attributes["ApproximateFirstReceiveTimestamp"].isdigit()
    assert attributes["SenderId"]
    assert record["messageAttributes"] == {
        "kind": {
            "stringValue": "sale",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        },
        "partner": {
            "stringValue": "42",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Number",
        },
        "raw": {
            "binaryValue": base64.b64encode(b"\x00\x01").decode(),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }
    # The handler ran once and reported nothing: the message is gone.
    assert _queue_counts(sqs, physical["WorkQueue"]) == (0, 0)


def test_one_failure_in_ten_is_retried_then_dead_lettered(
    aws_endpoint: str, physical: dict[str, str], running: list[QueuePoller | Scheduler]
) -> None:
    sqs = _sqs(aws_endpoint)
    bodies = [f"ok-{index}" for index in range(9)] + ["fail"]
    ids = _send_batch(sqs, physical["WorkQueue"], bodies)
    failing = ids[-1]
    poller, function = _poller("WorkFunction", physical, aws_endpoint, running, retry_seconds=1)
    poller.start()
    # The fixture queue's maxReceiveCount is 3: three tries, then the dead-letter queue.
    _wait_until(lambda: _queue_counts(sqs, physical["WorkDeadLetterQueue"])[0] == 1)
    poller.stop()

    events = _received(function)
    first = events[0]["Records"]
    assert len(first) == 10
    assert {record["body"] for record in first} == set(bodies)
    retried = [record for event in events[1:] for record in event["Records"]]
    assert [record["messageId"] for record in retried] == [failing, failing]
    counts = [record["attributes"]["ApproximateReceiveCount"] for record in retried]
    assert counts == ["2", "3"]
    assert poller.counts.deleted == 9
    assert _queue_counts(sqs, physical["WorkQueue"]) == (0, 0)

    dead = sqs.receive_message(QueueUrl=physical["WorkDeadLetterQueue"], MaxNumberOfMessages=10)
    ((message),) = dead["Messages"]
    assert (message["MessageId"], message["Body"]) == (failing, "fail")


def test_a_handler_exception_leaves_the_whole_batch(
    aws_endpoint: str,
    physical: dict[str, str],
    running: list[QueuePoller | Scheduler],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sqs = _sqs(aws_endpoint)
    _send_batch(sqs, physical["PlainQueue"], ["a", "raise", "b"])
    # No local retry: the batch waits out the queue's VisibilityTimeout (180 s), as on AWS.
    poller, function = _poller("PlainFunction", physical, aws_endpoint, running, None)
    poller.start()
    _wait_until(lambda: len(_received(function)) == 1)
    poller.stop()

    assert [record["body"] for record in _received(function)[0]["Records"]] == ["a", "raise", "b"]
    assert _queue_counts(sqs, physical["PlainQueue"]) == (0, 3)
    assert poller.counts.deleted == 0
    assert "plain batch failed on purpose" in capsys.readouterr().err


def test_a_failed_batch_comes_back_after_retry_seconds_and_success_deletes_it(
    aws_endpoint: str, physical: dict[str, str], running: list[QueuePoller | Scheduler]
) -> None:
    sqs = _sqs(aws_endpoint)
    _send_batch(sqs, physical["PlainQueue"], ["a", "b"])
    poller, function = _poller("PlainFunction", physical, aws_endpoint, running, retry_seconds=1)
    poller.start()
    _wait_until(lambda: poller.counts.deleted == 2)
    assert _queue_counts(sqs, physical["PlainQueue"]) == (0, 0)

    # A failed batch is all left behind, then all received again.
    _send_batch(sqs, physical["PlainQueue"], ["raise", "c"])
    _wait_until(lambda: len(_received(function)) == 3)
    poller.stop()
    again = _received(function)[2]["Records"]
    assert sorted(record["body"] for record in again) == ["c", "raise"]
    assert {record["attributes"]["ApproximateReceiveCount"] for record in again} == {"2"}


def test_what_lambda_makes_of_a_partial_batch_response() -> None:
    ids = ["m1", "m2", "m3"]

    def keep(result: Any, *, partial: bool = True) -> set[str]:
        return messages_to_keep(result, ids, partial_failures=partial)

    assert keep({"batchItemFailures": [{"itemIdentifier": "m2"}]}) == {"m2"}
    for success in (None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}):
        assert keep(success) == set()
    # A malformed answer fails the whole batch.
    for malformed in (
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"id": "m1"}]},
        {"batchItemFailures": [{"itemIdentifier": "unknown"}]},
        {"batchItemFailures": "m1"},
        "not an object",
    ):
        assert keep(malformed) == set(ids)
    # Without ReportBatchItemFailures whatever comes back is success.
    assert keep({"batchItemFailures": [{"itemIdentifier": "m2"}]}, partial=False) == set()


# --- the scheduler --------------------------------------------------------------------------


def _schedule(event_name: str) -> ScheduleSource:
    (source,) = (
        source
        for source in schedules(load_template(EVENTS_TEMPLATE))
        if source.event_name == event_name
    )
    return source


def test_scheduler_sends_scheduled_events_and_survives_a_failing_run(
    physical: dict[str, str],
    running: list[QueuePoller | Scheduler],
    capsys: pytest.CaptureFixture[str],
) -> None:
    function = _function("TickFunction", physical)
    scheduler = Scheduler(_schedule("EveryMinute"), function, 0.1, quiet=True)
    running.append(scheduler)
    assert scheduler.describe() == "every 0.1 s -> TickFunction (rate(1 minute) on AWS)"
    scheduler.start()
    # The fixture handler raises on its first run; the schedule must go on.
    _wait_until(lambda: len(_received(function)) >= 3)
    scheduler.stop()

    assert scheduler.errors == 1
    assert "first tick fails on purpose" in capsys.readouterr().err
    events = _received(function)
    for event in events:
        EventBridgeModel.model_validate(event)
        assert set(event) == {
            "version",
            "id",
            "detail-type",
            "source",
            "account",
            "time",
            "region",
            "resources",
            "detail",
        }
        assert event["version"] == "0"
        assert event["detail-type"] == "Scheduled Event"
        assert event["source"] == "aws.events"
        assert event["account"] == "123456789012"
        assert event["region"] == "us-east-1"
        assert event["resources"] == [
            "arn:aws:events:us-east-1:123456789012:rule/pingpost-local-TickFunctionEveryMinute"
        ]
        assert event["detail"] == {}
        assert event["time"].endswith("Z")
        datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ")
    assert len({event["id"] for event in events}) == len(events)


def test_a_cron_schedule_needs_an_interval_and_input_replaces_the_event(
    physical: dict[str, str],
) -> None:
    nightly = _schedule("Nightly")
    function = _function("TickFunction", physical)
    with pytest.raises(ValueError, match="no fixed interval"):
        Scheduler(nightly, function)
    assert Scheduler(nightly, function, 5).interval == 5
    assert scheduled_event(nightly) == {"job": "nightly"}
    # The rate's own interval is the default.
    assert Scheduler(_schedule("EveryMinute"), function).interval == 60


def _stop_in_background(stop: Callable[[], None]) -> bool:
    """Call stop() on another thread; whether it returned within the deadline."""
    worker = threading.Thread(target=stop, daemon=True)
    worker.start()
    worker.join(timeout=DEADLINE_SECONDS)
    return not worker.is_alive()


def test_stop_does_not_wait_for_the_next_tick_or_message(
    aws_endpoint: str, physical: dict[str, str], running: list[QueuePoller | Scheduler]
) -> None:
    function = _function("TickFunction", physical)
    scheduler = Scheduler(_schedule("EveryMinute"), function, 3600, quiet=True)
    poller, _work = _poller("WorkFunction", physical, aws_endpoint, running, None)
    running.append(scheduler)
    scheduler.start()
    poller.start()
    assert scheduler.running
    assert poller.running

    # An hour to the next tick and an empty queue: both stop well before either would end.
    assert _stop_in_background(scheduler.stop)
    assert _stop_in_background(poller.stop)
    assert not scheduler.running
    assert not poller.running
    assert _received(function) == []


# --- serve() ----------------------------------------------------------------------------------


def _partner_stats(url: str) -> dict[str, int]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("GET", "/_stats")
        stats: dict[str, int] = json.loads(conn.getresponse().read())
        return stats
    finally:
        conn.close()


def test_serve_runs_pollers_schedules_and_the_demo_partner(
    aws_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fresh_queues(aws_endpoint)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("DELIVERY_HTTP_HOSTS", raising=False)
    monkeypatch.delenv("DEMO_PARTNER_URL", raising=False)
    seen: dict[str, str] = {}

    def seed() -> None:
        # The partner is up before seeding, so a seed can point partners at it.
        seen["accepted_at_seed"] = str(_partner_stats(os.environ["DEMO_PARTNER_URL"])["accepted"])

    running = serve_in_thread(
        EVENTS_TEMPLATE, seed, retry_seconds=1, schedule_seconds=0.2, demo_partner_port=0
    )
    thread, stop, errors = running.thread, running.stop, running.errors
    seen.update(
        endpoint=os.environ["AWS_ENDPOINT_URL"],
        partner=os.environ["DEMO_PARTNER_URL"],
        hosts=os.environ["DELIVERY_HTTP_HOSTS"],
    )
    try:
        assert seen["accepted_at_seed"] == "0"
        assert seen["hosts"] == "127.0.0.1,localhost"
        sqs = _sqs(seen["endpoint"])
        queue = sqs.get_queue_url(QueueName="WorkQueue")["QueueUrl"]
        _send_batch(sqs, queue, ["deliver"])
        # WorkFunction raises unless the partner accepts: drained, and not dead-lettered,
        # means delivered.
        _wait_until(lambda: _queue_counts(sqs, queue) == (0, 0))
        dead = sqs.get_queue_url(QueueName="WorkDeadLetterQueue")["QueueUrl"]
        assert _queue_counts(sqs, dead) == (0, 0)
        # The schedules run every 0.2 s and deliver too, each run under its own key.
        _wait_until(lambda: _partner_stats(seen["partner"])["keys"] >= 3)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert not errors, errors
    names = {item.name for item in threading.enumerate()}
    assert not {name for name in names if name.startswith(("pingpost-sqs", "pingpost-schedule"))}
    assert "pingpost-demo-partner" not in names
    assert "DEMO_PARTNER_URL" not in os.environ
    assert "DELIVERY_HTTP_HOSTS" not in os.environ

    out = capsys.readouterr().out
    assert "SQS WorkQueue -> WorkFunction (batch 10, partial failures)" in out
    assert "SQS PlainQueue -> PlainFunction (batch 5, window 1 s)" in out
    assert "every 0.2 s -> TickFunction (rate(1 minute) on AWS)" in out
    assert "every 0.2 s -> TickFunction (cron(0 3 * * ? *) on AWS)" in out
    assert "SQS PausedQueue -> PlainFunction (batch 10, disabled): not polled" in out
    assert "rate(2 hours) -> TickFunction: disabled, not run" in out
    assert f"Demo partner: {seen['partner']}" in out

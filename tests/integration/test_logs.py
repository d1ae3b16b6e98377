"""The logs of a whole cycle hold no Key, no consumer's personal data and no partner secret.

Every line the functions print while a lead is pinged, posted, sold in full, refused,
delivered (and refused by its partner), redriven and parked is captured and searched for the
values that must never be logged in clear.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from tests.conftest import DEMO_SEED, EVENTS, demo_seed, local_function
from tests.leads import KEY, complete

PERSON = {
    "First_Name": "Zebulon",
    "Last_Name": "Quackenbush",
    "Email": "zebulon.quackenbush@example.com",
    "Home_Phone": "(312) 555-0188",
    "Address": "742 Evergreen Terrace",
    "IP_Address": "203.0.113.77",
}
SECRET_HEADER = "partner-secret-0123456789"
# What must not appear: the Key, each personal value, the phone as stored, the partner secret.
NEVER = [KEY, *PERSON.values(), "3125550188", SECRET_HEADER]


def _get(fields: dict[str, str]) -> dict[str, Any]:
    payload = json.loads((EVENTS / "api-get.json").read_text())
    payload["rawQueryString"] = urlencode(fields)
    payload["queryStringParameters"] = fields
    result: dict[str, Any] = local_function("ApiFunction").invoke(payload)
    return result


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """Every line the functions' logger writes, formatted as it prints them."""
    from pingpost.observability import logger

    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def test_a_whole_cycle_logs_no_secret_and_no_personal_data(
    aws: str, logged: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pingpost.config import settings
    from pingpost_local import seed
    from pingpost_local.partner import DemoPartner
    from pingpost_local.schedules import scheduled_event, schedules
    from pingpost_local.sqs import sqs_event
    from pingpost_local.template import load_template
    from tests.conftest import TEMPLATE

    monkeypatch.setenv("OUTBOX_GRACE_SECONDS", "0")
    monkeypatch.setenv("REDRIVE_BASE_SECONDS", "0")
    settings.cache_clear()
    with DemoPartner(failure_rate=1.0) as refusing:
        document = seed.load(DEMO_SEED)
        for partner in document.partners:
            partner.dedupe_days = 0
            partner.delivery.url = refusing.url + "/leads"
            partner.delivery.headers = {"X-Api-Key": SECRET_HEADER}
        seed.apply(document)
        sqs = boto3.client("sqs")
        queue, dead = os.environ["DELIVERY_QUEUE_URL"], os.environ["DEAD_LETTER_QUEUE_URL"]
        for url in (queue, dead):
            sqs.purge_queue(QueueUrl=url)
        logged.truncate(0)

        ping = _get(complete("ping", **{k: PERSON[k] for k in ("IP_Address",)}))
        assert ping["statusCode"] == 200
        lead_id = ping["body"].split("<lead_id>")[1].split("<")[0]
        post = _get(complete("post", Lead_ID=lead_id, **PERSON))
        assert "<status>Matched</status>" in post["body"]
        assert "<status>Matched</status>" in _get(complete("full", **PERSON))["body"]
        # Refused requests: a bad email, a wrong Key.
        assert _get(complete("full", **(PERSON | {"Email": "zebulon@"})))["statusCode"] == 400
        assert _get(complete("ping", Key=KEY[::-1]))["statusCode"] == 401

        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        batch = sqs_event(messages["Messages"], arn["Attributes"]["QueueArn"])
        failed = local_function("DeliverFunction").invoke(batch)["batchItemFailures"]
        assert len(failed) == len(messages["Messages"]) == 2  # the partner refused both
        for message in messages["Messages"]:
            sqs.send_message(
                QueueUrl=dead,
                MessageBody=message["Body"],
                MessageAttributes={
                    "redrives": {"DataType": "Number", "StringValue": str(settings().max_redrives)}
                },
            )
        (source,) = schedules(load_template(TEMPLATE))
        report = local_function("RetryFunction").invoke(scheduled_event(source))
        assert report["parked"] == 2
    text = logged.getvalue()
    assert '"message":"request refused"' in text and '"message":"retry run"' in text
    found = [value for value in NEVER if value in text]
    assert not found, f"logged in clear: {found}"
    monkeypatch.undo()
    settings.cache_clear()
    demo_seed()

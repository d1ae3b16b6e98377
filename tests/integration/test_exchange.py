"""The handlers with the events of events/, against the embedded AWS endpoint."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from lxml import etree

from tests.conftest import DEMO_SEED, EVENTS, ROOT, local_function
from tests.leads import DYNAMIC_KEY as OTHER_KEY
from tests.leads import KEY, complete

# An event file's name starts with its route; the function behind it, and that function's folder.
FUNCTIONS = {
    "ping": ("PingFunction", "ping"),
    "post": ("PostFunction", "post"),
    "full": ("FullFunction", "full"),
    **{
        route: ("ApiFunction", "api")
        for route in (
            "api",
            "apixml",
            "apijson",
            "newapi",
            "newapixml",
            "newapijson",
            "xmlapi",
            "response",
        )
    },
    "returns": ("ReturnsFunction", "returns"),  # JSON: tests/integration/test_returns
    "deliver": ("DeliverFunction", "deliver"),  # an SQS batch (tests/integration/test_delivery)
    "retry": ("RetryFunction", "retry"),  # a scheduled event (tests/integration/test_delivery)
    # A batch of the leads table's stream (tests/integration/test_figures_stream)
    "figures": ("FiguresFunction", "figures"),
}
# The events of the HTTP API's routes (the others are an SQS batch and a scheduled event).
API_EVENTS = sorted(
    p.stem for p in EVENTS.glob("*.json") if "routeKey" in json.loads(p.read_text())
)
# ... of the pingPostLead API (/returns answers partners in JSON: test_returns tries its event).
PING_POST_EVENTS = [name for name in API_EVENTS if not name.startswith("returns")]


@pytest.fixture(scope="module")
def exchange(aws: str) -> Iterator[None]:
    from pingpost_local import seed

    document = seed.load(DEMO_SEED)
    # The events post one consumer many times: dedupe is tested in test_sales.
    for partner in document.partners:
        partner.dedupe_days = 0
    seed.apply(document)
    yield


def handler(name: str) -> Any:
    return local_function(FUNCTIONS[name][0])


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def invoke(name: str, payload: dict[str, Any]) -> tuple[int, etree._Element]:
    result = handler(name.split("-", maxsplit=1)[0]).invoke(payload)
    assert result["headers"]["Content-Type"].startswith("application/xml")
    assert not result.get("isBase64Encoded")
    return result["statusCode"], etree.fromstring(result["body"].encode())


def text(xml: etree._Element, tag: str) -> str | None:
    node = xml.find(tag)
    return None if node is None else node.text


def with_query(payload: dict[str, Any], **changes: str) -> dict[str, Any]:
    from urllib.parse import parse_qsl

    fields = dict(parse_qsl(payload["rawQueryString"])) | changes
    fields = {k: v for k, v in fields.items() if v != ""}
    return payload | {"rawQueryString": urlencode(fields), "queryStringParameters": fields}


def ping_id() -> int:
    status, xml = invoke("ping-get", event("ping-get"))
    assert status == 200
    return int(text(xml, "lead_id") or 0)


@pytest.mark.parametrize("name", PING_POST_EVENTS)
def test_every_event_file_gets_an_answer(exchange: None, name: str) -> None:
    payload = event(name)
    if name.startswith("post"):
        # A post event needs a lead that was pinged first (lead 1 may be any other test's: a
        # form body is base64, where the ID must be changed too).
        lead_id = ping_id()
        payload = json.loads(json.dumps(payload).replace("Lead_ID=1&", f"Lead_ID={lead_id}&"))
        if payload.get("isBase64Encoded"):
            body = base64.b64decode(payload["body"]).replace(
                b"Lead_ID=1&", b"Lead_ID=%d&" % lead_id
            )
            payload["body"] = base64.b64encode(body).decode()
    result = handler(name.split("-", maxsplit=1)[0]).invoke(payload)
    assert result["statusCode"] == 200, result["body"]
    if name == "response-xsl":
        assert result["headers"]["Content-Type"].startswith("text/xsl")
        return
    if result["headers"]["Content-Type"].startswith("application/json"):
        # The events that ask for Format=JSON
        assert json.loads(result["body"])["response"]["status"] == "Matched"
        return
    assert text(etree.fromstring(result["body"].encode()), "status") == "Matched"


# Matched with the caches off and with them as deployed (tests/conftest.py: caches).
@pytest.mark.usefixtures("caches")
def test_ping_then_post_sells_the_lead_once(exchange: None) -> None:
    from pingpost.store import leads

    lead_id = ping_id()
    assert leads.get(lead_id).status == "pinged"  # type: ignore[union-attr]
    post = with_query(event("post-get"), Lead_ID=str(lead_id))
    first = invoke("post-get", post)
    again = invoke("post-get", post)
    assert first[0] == again[0] == 200
    assert etree.tostring(first[1]) == etree.tostring(again[1])
    stored = leads.get(lead_id)
    assert stored is not None
    assert stored.status == "sold"
    assert stored.sales == [{"partner_id": 142, "price": 25}]
    # A sold lead is kept for the retention period (90 days), then DynamoDB deletes it.
    assert stored.expires_at is not None and stored.expires_at > time.time() + 89 * 86_400
    assert "Key" not in stored.data
    assert stored.data["First_Name"] == "John" and stored.data["Zip"] == "60610"


def test_a_vendor_cannot_post_another_vendors_lead(exchange: None) -> None:
    lead_id = ping_id()
    post = with_query(event("post-get"), Lead_ID=str(lead_id), Key=OTHER_KEY)
    status, xml = invoke("post-get", post)
    assert status == 404
    assert text(xml, "error") == f"Lead_ID {lead_id} was not found or has expired"


def test_an_expired_ping_cannot_be_posted(exchange: None) -> None:
    import boto3

    lead_id = ping_id()
    boto3.client("dynamodb").update_item(
        TableName=os.environ["LEADS_TABLE"],
        Key={"lead_id": {"N": str(lead_id)}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": "1000"}},
    )
    status, _ = invoke("post-get", with_query(event("post-get"), Lead_ID=str(lead_id)))
    assert status == 404


@pytest.mark.parametrize(
    ("changes", "status", "error"),
    [
        ({"Key": ""}, 401, "Required value Key is missing"),
        ({"Key": "not-a-key-of-anyone"}, 401, "Invalid Key"),
        (
            {"Mode": "post"},
            400,
            "Invalid value for Mode: this is the /ping endpoint; send Mode=ping or leave Mode out",
        ),
        (
            {"TYPE": "5"},
            400,
            "Invalid value for TYPE: must be a lead type of this exchange: 7 (Home Improvement),"
            " 20 (Auto Insurance), 21 (Solar)",
        ),
        (
            {"Zip": "", "State": ""},
            400,
            "Required value State is missing; Required value Zip is missing",
        ),
        ({"API_Action": "getLead"}, 400, "Invalid value for API_Action: must be pingPostLead"),
    ],
)
def test_refusals_name_the_problem_with_a_fitting_status(
    exchange: None, changes: dict[str, str], status: int, error: str
) -> None:
    answer = invoke("ping-get", with_query(event("ping-get"), **changes))
    assert answer[0] == status
    assert text(answer[1], "status") == "Error"
    assert text(answer[1], "error") == error


def test_unknown_lead_id_is_404(exchange: None) -> None:
    status, xml = invoke("post-get", with_query(event("post-get"), Lead_ID="999999999"))
    assert (status, text(xml, "error")) == (404, "Lead_ID 999999999 was not found or has expired")


def test_a_disabled_vendor_is_403(exchange: None) -> None:
    from pingpost_local import seed

    document = seed.load(DEMO_SEED)
    disabled = document.vendors[0].model_copy(
        update={"id": "disabled", "key": "disabled-key-0123456789", "active": False}
    )
    seed.apply(seed.Seed(vendors=[disabled]))
    status, xml = invoke("ping-get", with_query(event("ping-get"), Key="disabled-key-0123456789"))
    assert (status, text(xml, "error")) == (403, "This Key's vendor account is disabled")


# Matched with the caches off and with them as deployed (tests/conftest.py: caches).
@pytest.mark.usefixtures("caches")
def test_50_concurrent_pings_from_many_containers_get_50_distinct_ids(exchange: None) -> None:
    from pingpost import exchange as core
    from pingpost.store import counters
    from pingpost.stores import Stores

    fields = complete("ping", Home_Improvement_Product="Gutters", Score="3")
    vendor = core.authenticate(KEY)
    values = core.validate(fields, "ping", dynamic_pricing=False)
    # Each thread is a container of its own, drawing its own blocks from the shared counter.
    containers = [counters.LeadIds(block=3) for _ in range(50)]

    def ping(container: counters.LeadIds) -> int:
        stores = Stores(lead_ids=container)
        return core.ping(vendor, dict(values), {}, stores=stores).lead_id

    with ThreadPoolExecutor(max_workers=50) as pool:
        ids = list(pool.map(ping, containers))
    assert len(set(ids)) == 50


# Matched with the caches off and with them as deployed (tests/conftest.py: caches).
@pytest.mark.usefixtures("caches")
def test_10_concurrent_posts_of_one_lead_sell_it_once(exchange: None) -> None:
    from pingpost import exchange as core
    from pingpost.decoding import Request
    from pingpost.store import leads

    lead_id = ping_id()
    post = complete("post", Lead_ID=str(lead_id))
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: core.submit(Request(post)), range(10)))
    assert {a.status for a in answers} == {"Matched"}
    assert len(set(answers)) == 1
    stored = leads.get(lead_id)
    assert stored is not None and stored.status == "sold"
    assert len(stored.sales) == 1


def test_skip_xsl_leaves_out_the_stylesheet_even_on_errors(exchange: None) -> None:
    payload = with_query(event("ping-get"), Skip_XSL="1", Zip="00000")
    result = handler("ping").invoke(payload)
    assert result["statusCode"] == 400
    assert "xml-stylesheet" not in result["body"]
    result = handler("ping").invoke(with_query(event("ping-get"), Zip="00000"))
    assert '<?xml-stylesheet type="text/xsl" href="response.xsl"?>' in result["body"]


def test_events_are_real_files(exchange: None) -> None:
    from pingpost_local.template import function_ids, load_template

    assert {Path(p).stem.split("-")[0] for p in EVENTS.glob("*.json")} == set(FUNCTIONS)
    # Every function of the template has an event for `sam local invoke`.
    template = load_template(ROOT / "template.yaml")
    assert {function_id for function_id, _ in FUNCTIONS.values()} == set(function_ids(template))


def _mark_posting(lead_id: int, claimed_at: int) -> None:
    import boto3

    boto3.client("dynamodb").update_item(
        TableName=os.environ["LEADS_TABLE"],
        Key={"lead_id": {"N": str(lead_id)}},
        UpdateExpression="SET #s = :posting, claim = :c, claimed_at = :t",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":posting": {"S": "posting"},
            ":c": {"S": "crashed"},
            ":t": {"N": str(claimed_at)},
        },
    )


def _quick(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    from pingpost import exchange as core
    from pingpost.config import settings

    quick = settings()._replace(post_wait_seconds=seconds)
    monkeypatch.setattr(core, "settings", lambda: quick)


def test_a_post_that_died_holding_the_lead_is_taken_over(
    exchange: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from pingpost.store import leads

    _quick(monkeypatch, 0.3)
    lead_id = ping_id()
    # Its clock said an hour from now: only its lack of progress counts
    _mark_posting(lead_id, claimed_at=int(time.time() * 1000) + 3_600_000)
    status, xml = invoke("post-get", with_query(event("post-get"), Lead_ID=str(lead_id)))
    assert (status, text(xml, "status")) == (200, "Matched")
    stored = leads.get(lead_id)
    assert stored is not None and stored.status == "sold" and len(stored.sales) == 1


def test_a_post_under_way_elsewhere_is_a_409_when_it_does_not_finish(
    exchange: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import boto3

    _quick(monkeypatch, 0.5)
    lead_id = ping_id()
    # A post long past any deadline by its clock, but making progress while this one waits
    _mark_posting(lead_id, claimed_at=0)
    working = threading.Event()

    def progress() -> None:
        while not working.wait(0.05):
            boto3.client("dynamodb").update_item(
                TableName=os.environ["LEADS_TABLE"],
                Key={"lead_id": {"N": str(lead_id)}},
                UpdateExpression="ADD beat :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )

    worker = threading.Thread(target=progress)
    worker.start()
    try:
        status, xml = invoke("post-get", with_query(event("post-get"), Lead_ID=str(lead_id)))
    finally:
        working.set()
        worker.join()
    assert status == 409
    assert text(xml, "error") == (
        f"Lead_ID {lead_id} is being posted by another request; retry shortly"
    )


def test_a_test_lead_is_not_sold_to_real_partners(exchange: None) -> None:
    from pingpost.store import leads

    status, xml = invoke("full-get", with_query(event("full-get"), Test_Lead="1"))
    assert (status, text(xml, "status")) == (200, "Matched")
    stored = leads.get(int(text(xml, "lead_id") or 0))
    assert stored is not None and stored.test
    assert [s["partner_id"] for s in stored.sales] == [9001]  # the demo's test buyer only


def test_every_route_of_the_template_has_an_event() -> None:
    from pingpost_local.template import http_routes, load_template

    keys = {event(name)["routeKey"] for name in API_EVENTS}
    routes = {route.route_key for route in http_routes(load_template(ROOT / "template.yaml"))}
    assert routes <= keys, f"routes without an event in events/: {sorted(routes - keys)}"


def test_every_aws_call_names_the_exchange_as_its_user_agent(aws: str) -> None:
    # Given the exchange's three AWS clients, their requests watched as they are sent
    from pingpost.store import USER_AGENT, dynamodb, queues, secrets

    sent: dict[str, str] = {}
    clients = {"dynamodb": dynamodb(), "sqs": queues.sqs(), "ssm": secrets.ssm()}

    def watch(name: str) -> Any:
        def record(request: Any, **_: Any) -> None:
            sent[name] = request.headers["User-Agent"].decode()

        return record

    watchers = {name: watch(name) for name in clients}
    for name, client in clients.items():
        client.meta.events.register("before-send", watchers[name])
    try:
        # When each makes a call
        clients["dynamodb"].list_tables()
        clients["sqs"].list_queues()
        clients["ssm"].describe_parameters()
    finally:
        for name, client in clients.items():
            client.meta.events.unregister("before-send", watchers[name])

    # Then each request says it is the exchange's (CloudTrail shows it as the userAgent)
    assert set(sent) == set(clients)
    for agent in sent.values():
        assert agent.startswith(f"{USER_AGENT} "), agent
    assert USER_AGENT.startswith("pingpost python/")

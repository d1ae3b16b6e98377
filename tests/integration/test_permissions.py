"""Each function's IAM policy in template.yaml allows exactly the AWS calls its code makes.

Every call a function's handler makes through botocore is recorded while it serves the
requests and messages of its job, its recovery paths included (a repeated request, a lead
taken over, dead letters redriven and parked, a dead post swept), and compared with the
statements of that function in the template: each call must be allowed (or it fails on AWS),
and each permission must be used (or it is more than the function needs). A last test checks
that the scenarios reach every AWS operation the product code names.
"""

from __future__ import annotations

import ast
import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from tests.conftest import DEMO_SEED, EVENTS, ROOT, TEMPLATE, demo_seed, local_function
from tests.leads import complete

FOLDERS = {
    "PingFunction": "ping",
    "PostFunction": "post",
    "FullFunction": "full",
    "ApiFunction": "api",
    "DeliverFunction": "deliver",
    "RetryFunction": "retry",
    "ReturnsFunction": "returns",
    "FiguresFunction": "figures",
}
# The actions a transaction's items need, by the kind of item.
_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
_BATCHES = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage"}


def _template() -> dict[str, Any]:
    from pingpost_local.template import load_template

    return load_template(TEMPLATE)


def _names() -> dict[str, str]:
    """Physical table names and queue URLs, by the logical ID the template's environment gives."""
    variables = _template()["Globals"]["Function"]["Environment"]["Variables"]
    return {
        os.environ[name]: value["Ref"]
        for name, value in variables.items()
        if isinstance(value, dict) and "Ref" in value and name in os.environ
    }


def _needed(service: str, operation: str, params: dict[str, Any]) -> set[tuple[str, str]]:
    """The (action, resource) pairs IAM checks for one call, resources as physical names."""
    if service == "sqs":
        return {(f"sqs:{_BATCHES.get(operation, operation)}", params["QueueUrl"])}
    if service == "ssm":
        return {(f"ssm:{operation}", params["Name"])}
    if operation == "TransactWriteItems":
        return {
            (f"dynamodb:{_ITEM_ACTIONS[kind]}", body["TableName"])
            for item in params["TransactItems"]
            for kind, body in item.items()
        }
    if operation == "BatchGetItem":
        return {("dynamodb:BatchGetItem", table) for table in params["RequestItems"]}
    resource = params["TableName"]
    if "IndexName" in params:
        resource += "/index/" + params["IndexName"]
    return {(f"dynamodb:{operation}", resource)}


# Every operation recorded, as the code names it (update_item, query, ...).
OPERATIONS: set[str] = set()


@contextmanager
def recording() -> Iterator[set[tuple[str, str]]]:
    """The calls made by this process's product clients while inside, as (action, resource)."""
    from pingpost.store import dynamodb
    from pingpost.store.queues import sqs
    from pingpost.store.secrets import ssm

    names = _names()
    seen: set[tuple[str, str]] = set()

    def hook(params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        service = model.service_model.endpoint_prefix
        OPERATIONS.add(re.sub(r"(?<!^)([A-Z])", r"_\1", model.name).lower())
        for action, name in _needed(service, model.name, params):
            secret = name.startswith(os.environ["PARTNER_SECRETS_PATH"] + "/")
            kind = name.rsplit("/", 1)[-1]  # headers, bid-headers or post-headers
            table, _, index = (f"{SECRETS}/{kind}" if secret else name).partition("/index/")
            logical = names.get(table, table)
            seen.add((action, f"{logical}/index/{index}" if index else logical))

    clients = (dynamodb(), sqs(), ssm())
    for client in clients:
        client.meta.events.register("before-parameter-build", hook, unique_id="permissions")
    try:
        yield seen
    finally:
        for client in clients:
            client.meta.events.unregister("before-parameter-build", unique_id="permissions")


SECRETS = "partner secrets"
_SECRETS_ARN = (
    "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"
    "/pingpost/${AWS::StackName}/partners/*/"
)


def _resource(value: Any) -> str:
    """A policy Resource as `Logical`, `Logical/index/name` or the partner secrets of a kind."""
    if isinstance(value, dict) and str(value.get("Fn::Sub", "")).startswith(_SECRETS_ARN):
        kind = value["Fn::Sub"].removeprefix(_SECRETS_ARN)
        assert kind in ("headers", "bid-headers", "post-headers"), value
        return f"{SECRETS}/{kind}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical, attribute = value["Fn::GetAtt"]
        assert attribute == "Arn", value
        return str(logical)
    if isinstance(value, dict) and "Fn::Sub" in value:
        found = re.fullmatch(r"\$\{(\w+)\.Arn\}/index/(\w+)", value["Fn::Sub"])
        assert found, value
        return f"{found[1]}/index/{found[2]}"
    raise AssertionError(f"a resource the test cannot read: {value!r}")


def allowed(function_id: str) -> set[tuple[str, str]]:
    """The (action, resource) pairs the template's statements grant a function."""
    out: set[tuple[str, str]] = set()
    for policy in _template()["Resources"][function_id]["Properties"].get("Policies", []):
        assert set(policy) == {"Statement"}, f"{function_id}: only explicit statements: {policy}"
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"]
            resources = statement["Resource"]
            for action in actions if isinstance(actions, list) else [actions]:
                for resource in resources if isinstance(resources, list) else [resources]:
                    out.add((action, _resource(resource)))
    return out


def _handler(function_id: str) -> Any:
    return local_function(function_id)


def _http(function_id: str, fields: dict[str, str], **headers: str) -> int:
    """Serve one GET request of these fields; its HTTP status."""
    route = FOLDERS[function_id]
    payload = json.loads((EVENTS / f"{route}-get.json").read_text())
    payload["rawQueryString"] = urlencode(fields)
    payload["queryStringParameters"] = fields
    payload["headers"] = payload.get("headers", {}) | headers
    result = _handler(function_id).invoke(payload)
    assert result["statusCode"] < 500, result["body"]
    status: int = result["statusCode"]
    return status


def _lead(mode: str, **changes: str) -> dict[str, str]:
    # Gutters: the demo partner that buys them has caps, a budget and a dedupe window, so a
    # sale writes every kind of item it can; and two buyers that bid more (below) are posted
    # first: one says no (its reservation is given back), one buys. Twice sold: the demo
    # partner too, whose sale is queued.
    return complete(mode, Home_Improvement_Product="Gutters", Allowed_Times_Sold="2", **changes)


def _pinged() -> int:
    from pingpost import exchange
    from pingpost.decoding import Request

    return exchange.submit(Request(_lead("ping"))).lead_id


# Buyers of Gutters that bid, each with secret headers: 520 is not listening (asked, it has no
# bid); 521 bids most and rejects every post (capped, with a dedupe window: its reservation
# holds every kind of item); 522 bids next and buys.
BIDDER: dict[str, Any] = {
    "id": 520,
    "price": 1,
    "filters": {"products": ["Gutters"]},
    "bid": {"url": "http://127.0.0.1:9/ping", "headers": {"Authorization": "Bearer bid-secret"}},
    "post": {"url": "http://127.0.0.1:9/post"},
}


def _bidders(rejecting: Any, buying: Any) -> list[dict[str, Any]]:
    secret = {"headers": {"X-Post-Key": "post-secret"}}
    return [
        BIDDER,
        BIDDER
        | {"id": 521, "caps": {"daily": 1000}, "dedupe_days": 30}
        | rejecting.endpoints(bid={"timeout": 5}, post=secret),
        BIDDER | {"id": 522} | buying.endpoints(bid={"timeout": 5}, post=secret),
    ]


def _seed() -> None:
    """The demo seed, its vendors waiting long enough for a busy machine's bids, and Roof Co
    (142) with a daily cap: its sales count in its day counter, which a return credits."""
    from pingpost.models import Caps
    from pingpost_local import seed

    document = seed.load(DEMO_SEED)
    for vendor in document.vendors:
        vendor.bid_timeout = 5  # type: ignore[attr-defined]
    for partner in document.partners:
        if partner.id == 142:
            partner.caps = Caps(daily=1000)
    seed.apply(document)


@pytest.fixture(scope="module")
def demo(aws: str) -> Iterator[None]:
    from pingpost.store import partners
    from pingpost_local import seed
    from pingpost_local.bidder import DemoBidder

    with DemoBidder(low=95, reject_rate=1) as rejecting, DemoBidder(low=90) as buying:
        _seed()
        seed.apply(seed.Seed.model_validate({"partners": _bidders(rejecting, buying)}))
        yield
    for partner_id in (520, 521, 522):
        boto3.client("dynamodb").delete_item(
            TableName=os.environ["PARTNERS_TABLE"], Key={"partner_id": {"N": str(partner_id)}}
        )
    partners.forget()
    demo_seed()


def _api_calls(function_id: str) -> set[tuple[str, str]]:
    """Ping, post and full requests as this function takes them, repeats included: the first
    in a new container of a table written before the partners' index (it reads every partner),
    the next after the table was indexed and an operator wrote partners (it reads those, and
    the lead's neighbourhood in the index)."""
    from pingpost.store import partners

    modes = {"PingFunction": ["ping"], "PostFunction": ["post"], "FullFunction": ["full"]}
    with_mode = function_id == "ApiFunction"
    calls: set[tuple[str, str]] = set()

    def request(mode: str) -> dict[str, str]:
        lead_id = _pinged() if mode == "post" else None
        fields = _lead(mode, **({"Lead_ID": str(lead_id)} if lead_id else {}))
        if not with_mode:
            fields.pop("Mode", None)
        return fields

    for mode in modes.get(function_id, ["ping", "post", "full"]):
        first, second = request(mode), request(mode)
        key = {"idempotency-key": uuid.uuid4().hex}
        partners.forget()
        boto3.client("dynamodb").update_item(
            TableName=os.environ["COUNTERS_TABLE"],
            Key={"counter": {"S": partners.VERSION}},
            UpdateExpression="REMOVE #ix",
            ExpressionAttributeNames={"#ix": "indexed"},
        )
        with recording() as seen:
            assert _http(function_id, first) == 200
        calls |= seen
        partners.reindex()
        _seed()  # the partners' version moves
        with recording() as seen:
            assert _http(function_id, second, **key) == 200
            # The same request again: a repeated post or full is the first lead's answer.
            assert _http(function_id, second, **key) == 200
        calls |= seen
    if "ping" in modes.get(function_id, ["ping"]):
        # A test lead's ping is counted in no day figures: the lead's put alone.
        with recording() as seen:
            assert _http(function_id, request("ping") | {"Test_Lead": "1"}) == 200
        calls |= seen
    # A Key no vendor has (a typo, or one a rotation retired): looked for as either Key.
    unknown = request(modes.get(function_id, ["ping"])[0]) | {"Key": uuid.uuid4().hex * 2}
    with recording() as seen:
        assert _http(function_id, unknown) == 401
    return calls | seen


def _drain(queue: str) -> None:
    sqs = boto3.client("sqs")
    while sqs.receive_message(QueueUrl=os.environ[queue], MaxNumberOfMessages=10).get("Messages"):
        pass


def _deliver_calls() -> set[tuple[str, str]]:
    """A sale's delivery (the demo partner is not listening: the attempt fails, is recorded);
    the sales made on bids were posted and are not queued."""
    from pingpost import exchange
    from pingpost.decoding import Request
    from pingpost_local import seed
    from pingpost_local.sqs import sqs_event

    sqs = boto3.client("sqs")
    queue = os.environ["DELIVERY_QUEUE_URL"]
    _drain("DELIVERY_QUEUE_URL")
    document = seed.load(DEMO_SEED)
    (gutters,) = [p for p in document.partners if p.id == 510]
    gutters.delivery.headers = {"X-Api-Key": "partner-510-secret"}
    for vendor in document.vendors:
        vendor.bid_timeout = 5  # type: ignore[attr-defined]
    seed.apply(document)
    answer = exchange.submit(Request(_lead("full")))
    assert answer.status == "Matched"
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    # This lead's (a message an earlier test left in flight may come back meanwhile).
    messages = [
        m for m in received["Messages"] if json.loads(m["Body"])["lead_id"] == answer.lead_id
    ]
    assert [json.loads(m["Body"])["partner_id"] for m in messages] == [510]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    with recording() as seen:
        _handler("DeliverFunction").invoke(sqs_event(messages, arn["Attributes"]["QueueArn"]))
    _seed()
    return seen


def _retry_calls(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, str]]:
    """Two scheduled runs: a dead letter redriven, one parked, a post that died swept."""
    from datetime import UTC, datetime

    from pingpost.config import settings
    from pingpost.store import leads, partners, sales
    from pingpost_local.schedules import scheduled_event, schedules
    from pingpost_local.template import load_template

    monkeypatch.setenv("OUTBOX_GRACE_SECONDS", "0")
    monkeypatch.setenv("REDRIVE_BASE_SECONDS", "0")
    settings.cache_clear()
    _drain("DEAD_LETTER_QUEUE_URL")
    sqs = boto3.client("sqs")
    for redrives in ("0", str(settings().max_redrives)):
        sqs.send_message(
            QueueUrl=os.environ["DEAD_LETTER_QUEUE_URL"],
            MessageBody=json.dumps({"lead_id": _pinged(), "partner_id": 510}),
            MessageAttributes={"redrives": {"DataType": "Number", "StringValue": redrives}},
        )
    assert leads.claim(_pinged(), "demo", "a post that dies", now_ms=1)
    # ... and one that died waiting for its buyer's answer: its reservation is given back
    dying = _pinged()
    posted = leads.get(dying)
    assert posted is not None
    posted.data["Email"] = f"reserved{dying}@example.com"
    assert leads.claim(dying, "demo", "a post that dies posting", now_ms=1, posted=posted)
    reserved = partners.by_id(521)
    assert reserved is not None
    consumer = {"email": posted.data["Email"]}
    now = datetime.now(UTC)
    record = sales.reservation(reserved, now, consumer, until=1, test=False)  # its time is up
    assert (
        sales.sell(
            dying,
            "a post that dies posting",
            reserved,
            now,
            allowed=2,
            consumer=consumer,
            test=False,
            reserve=record,
        )
        is None
    )
    (source,) = schedules(load_template(TEMPLATE))
    with recording() as seen:
        for _ in range(2):
            _handler("RetryFunction").invoke(scheduled_event(source))
    monkeypatch.undo()
    settings.cache_clear()
    return seen


def _returns_calls() -> set[tuple[str, str]]:
    """Roof Co returns a lead it bought (a day's sale: its counter and day figures credited),
    then again (returned already), one it did not buy, and a key that is not its."""
    from pingpost import exchange
    from pingpost.decoding import Request

    sold = exchange.submit(Request(complete("full", Email=f"{uuid.uuid4().hex}@example.com")))
    assert sold.status == "Matched"
    payload = json.loads((EVENTS / "returns-post.json").read_text())
    key = payload["headers"]["authorization"]
    unsold = _pinged()
    answers = []
    with recording() as seen:
        for lead_id, authorization in (
            (sold.lead_id, key),
            (sold.lead_id, key),
            (unsold, key),
            (sold.lead_id, "Bearer 142.not-its-key"),
        ):
            body = json.dumps({"lead_id": lead_id, "reason": "disconnected"})
            headers = payload["headers"] | {"authorization": authorization}
            result = _handler("ReturnsFunction").invoke(
                payload | {"body": body, "headers": headers}
            )
            answers.append((result["statusCode"], json.loads(result["body"])["status"]))
    assert answers == [(200, "returned"), (200, "returned already"), (404, "error"), (401, "error")]
    return seen


def _figures_calls() -> set[tuple[str, str]]:
    """A batch of the leads table's stream holding a full request's writes, counted (the
    batch's record read; the day items and the record written in one transaction)."""
    from pingpost import exchange
    from pingpost.decoding import Request
    from tests.conftest import count_figures

    count_figures()  # what earlier scenarios wrote
    assert exchange.submit(Request(_lead("full"))).status == "Matched"
    with recording() as seen:
        assert count_figures() > 0
    return seen


def calls(function_id: str, monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, str]]:
    if function_id == "FiguresFunction":
        return _figures_calls()
    if function_id == "ReturnsFunction":
        return _returns_calls()
    if function_id == "DeliverFunction":
        return _deliver_calls()
    if function_id == "RetryFunction":
        return _retry_calls(monkeypatch)
    from pingpost.config import settings
    from pingpost.store.counters import lead_ids

    # This process's block of lead IDs used up, so that a ping reserves the next block, as the
    # first ping of every container does; and cap usage read afresh, as a cold container does.
    lead_ids._next = lead_ids._end
    monkeypatch.setenv("USAGE_CACHE_SECONDS", "0")
    settings.cache_clear()
    try:
        return _api_calls(function_id)
    finally:
        monkeypatch.undo()
        settings.cache_clear()


RECORDED: dict[str, set[tuple[str, str]]] = {}


@pytest.mark.parametrize("function_id", list(FOLDERS))
def test_each_function_may_make_exactly_the_calls_its_code_makes(
    demo: None, function_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = calls(function_id, monkeypatch)
    RECORDED[function_id] = made
    granted = allowed(function_id)
    assert made <= granted, f"{function_id} would be denied: {sorted(made - granted)}"
    assert granted <= made, f"{function_id} is granted more than it uses: {sorted(granted - made)}"


# What only an operator's tools call (the CLI and the seed), never a function.
OPERATOR_ONLY = {
    "partners._write",
    "partners._reindex",
    "vendors.put",
    "vendors.all_vendors",
    "deliveries.failed",
    "secrets.put",
    "secrets.forget",
    "secrets.versions",
}


def _operations_in_code() -> dict[str, set[str]]:
    """Each store function's AWS operations, by `module.function`, read from the source."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "layers" / "pingpost" / "pingpost" / "store").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            names = set()
            for call in ast.walk(node):
                if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
                    continue
                client = call.func.value
                on_client = isinstance(client, ast.Call) and getattr(client.func, "id", "") in (
                    "dynamodb",
                    "sqs",
                    "ssm",
                )
                if on_client and call.func.attr == "get_paginator":
                    names.add(ast.literal_eval(call.args[0]))
                elif on_client:
                    names.add(call.func.attr)
            if names:
                found[f"{path.stem}.{node.name}"] = names
    return found


def test_the_functions_make_every_call_the_store_code_names(
    demo: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for function_id in FOLDERS:
        if function_id not in RECORDED:  # the test above ran elsewhere (a parallel run)
            RECORDED[function_id] = calls(function_id, monkeypatch)
    code = _operations_in_code()
    assert set(code) >= OPERATOR_ONLY
    missing = {
        f"{where}: {op}"
        for where, ops in code.items()
        if where not in OPERATOR_ONLY
        for op in ops
        if op not in OPERATIONS
    }
    assert not missing, f"no scenario above makes these calls: {sorted(missing)}"


def test_the_secrets_path_the_functions_use_is_the_one_the_deliver_function_may_read() -> None:
    variables = _template()["Globals"]["Function"]["Environment"]["Variables"]
    path = variables["PARTNER_SECRETS_PATH"]["Fn::Sub"]
    assert _SECRETS_ARN.endswith(":parameter" + path + "/*/")


def test_an_event_for_another_functions_route_is_a_404_not_a_crash(demo: None) -> None:
    # Found writing these scenarios: it was answered 500 "Internal error".
    payload = json.loads((EVENTS / "api-get.json").read_text())
    result = _handler("PingFunction").invoke(payload)
    assert result["statusCode"] == 404
    assert "<error>No such resource</error>" in result["body"]

"""The local runner against moto's server mode and a real loopback HTTP server."""

import base64
import http.client
import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from pingpost_local.gateway import HttpRequest, build_event, to_http_response
from pingpost_local.resources import create_resources
from pingpost_local.server import LocalExchange
from pingpost_local.template import load_template
from tests.conftest import _dynamodb, _sqs, serve_in_thread

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
ECHO_TEMPLATE = REPO / "tests" / "fixtures" / "echo" / "template.yaml"
TABLES = ("LeadsTable", "VendorsTable", "PartnersTable", "CountersTable")


@pytest.fixture(scope="module")
def created(aws_endpoint: str) -> dict[str, str]:
    return create_resources(load_template(TEMPLATE), _dynamodb(aws_endpoint), _sqs(aws_endpoint))


def test_start_aws_endpoint_is_loopback_on_an_ephemeral_port(aws_endpoint: str) -> None:
    parts = urlsplit(aws_endpoint)
    assert parts.hostname == "127.0.0.1"
    assert parts.port and parts.port > 0


def test_tables_match_the_template(aws_endpoint: str, created: dict[str, str]) -> None:
    dynamodb = _dynamodb(aws_endpoint)
    resources = load_template(TEMPLATE)["Resources"]
    for logical_id in TABLES:
        props = resources[logical_id]["Properties"]
        name = created[logical_id]
        table = dynamodb.describe_table(TableName=name)["Table"]
        assert table["KeySchema"] == props["KeySchema"]
        assert sorted(table["AttributeDefinitions"], key=str) == sorted(
            props["AttributeDefinitions"], key=str
        )
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert created[f"{logical_id}.Arn"] == table["TableArn"]
        backups = dynamodb.describe_continuous_backups(TableName=name)
        pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"

    vendors = dynamodb.describe_table(TableName=created["VendorsTable"])["Table"]
    indexes = {index["IndexName"]: index for index in vendors["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"by_key_hash", "by_next_key_hash"}
    for name, index in indexes.items():
        attribute = name.removeprefix("by_")
        assert index["KeySchema"] == [{"AttributeName": attribute, "KeyType": "HASH"}]
        assert index["Projection"] == {"ProjectionType": "ALL"}

    ttl = dynamodb.describe_time_to_live(TableName=created["LeadsTable"])["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_delivery_queue_redrives_to_the_dead_letter_queue(
    aws_endpoint: str, created: dict[str, str]
) -> None:
    sqs = _sqs(aws_endpoint)
    attributes = sqs.get_queue_attributes(
        QueueUrl=created["DeliveryQueue"], AttributeNames=["All"]
    )["Attributes"]
    dead = sqs.get_queue_attributes(
        QueueUrl=created["DeliveryDeadLetterQueue"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dead
    assert int(redrive["maxReceiveCount"]) == 5
    assert attributes["VisibilityTimeout"] == "180"
    assert attributes["MessageRetentionPeriod"] == "345600"
    assert created["DeliveryQueue.QueueName"] == "DeliveryQueue"


def test_create_resources_twice_reuses_everything(
    aws_endpoint: str, created: dict[str, str]
) -> None:
    again = create_resources(load_template(TEMPLATE), _dynamodb(aws_endpoint), _sqs(aws_endpoint))
    assert again == created


# --- the gateway, over real HTTP -------------------------------------------------------------


@pytest.fixture
def exchange() -> Iterator[LocalExchange]:
    local = LocalExchange(ECHO_TEMPLATE, 0, quiet=True)
    local.start()
    try:
        yield local
    finally:
        local.stop()


def _request(
    exchange: LocalExchange,
    method: str,
    target: str,
    *,
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, http.client.HTTPResponse, bytes]:
    parts = urlsplit(exchange.url)
    conn = connection or http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        # putrequest/putheader send the target and repeated headers exactly as given.
        conn.putrequest(method, target)
        for name, value in headers or []:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response, response.read()
    finally:
        if connection is None:
            conn.close()


def _echo(exchange: LocalExchange, method: str, target: str, **kwargs: Any) -> dict[str, Any]:
    status, response, body = _request(exchange, method, target, **kwargs)
    assert status == 200, body
    assert response.getheader("content-type") == "application/json"
    echoed: dict[str, Any] = json.loads(body)
    return echoed


def test_get_with_repeated_query_key(exchange: LocalExchange) -> None:
    echoed = _echo(exchange, "GET", "/echo?a=1&a=2&b=x%20y+z&flag&c=%2B")
    event = echoed["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /echo"
    assert event["rawPath"] == "/echo"
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y+z&flag&c=%2B"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y z", "flag": "", "c": "+"}
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    assert "pathParameters" not in event
    context = event["requestContext"]
    assert context["http"]["method"] == "GET"
    assert context["http"]["path"] == "/echo"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["stage"] == "$default"
    assert context["routeKey"] == "GET /echo"
    assert context["accountId"] == "123456789012"
    assert isinstance(context["timeEpoch"], int)
    assert set(context) >= {"apiId", "domainName", "domainPrefix", "requestId", "time"}


def test_no_query_string_omits_parameters(exchange: LocalExchange) -> None:
    event = _echo(exchange, "GET", "/echo")["event"]
    assert event["rawQueryString"] == ""
    assert "queryStringParameters" not in event


def test_headers_are_lower_cased_and_duplicates_joined(exchange: LocalExchange) -> None:
    event = _echo(
        exchange,
        "GET",
        "/echo",
        headers=[
            ("X-Custom-Header", "One"),
            ("X-Dup", "a"),
            ("X-Dup", "b"),
            ("User-Agent", "pytest-agent"),
            ("Cookie", "first=1; second=2"),
        ],
    )["event"]
    headers = event["headers"]
    assert all(name == name.lower() for name in headers)
    assert headers["x-custom-header"] == "One"
    assert headers["x-dup"] == "a,b"
    assert headers["x-forwarded-proto"] == "http"
    assert event["requestContext"]["http"]["userAgent"] == "pytest-agent"
    assert event["cookies"] == ["first=1", "second=2"]
    assert "cookie" not in headers


def test_form_post_arrives_base64_encoded(exchange: LocalExchange) -> None:
    form = b"Name=J%C3%B6rg&Zip=12345&Zip=67890"
    event = _echo(
        exchange,
        "POST",
        "/echo",
        headers=[("Content-Type", "application/x-www-form-urlencoded")],
        body=form,
    )["event"]
    assert event["routeKey"] == "POST /echo"
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == form


def test_text_bodies_arrive_as_text(exchange: LocalExchange) -> None:
    document = '<?xml version="1.0"?><lead>Jörg</lead>'
    for content_type in ("application/xml", "text/xml; charset=utf-8", "application/json"):
        event = _echo(
            exchange,
            "POST",
            "/echo",
            headers=[("Content-Type", content_type)],
            body=document.encode(),
        )["event"]
        assert event["isBase64Encoded"] is False
        assert event["body"] == document


def test_handler_environment_context_and_module_names(exchange: LocalExchange) -> None:
    echoed = _echo(exchange, "GET", "/echo")
    assert echoed["environment"]["ECHO_GREETING"] == "hello"
    assert echoed["environment"]["ECHO_NAME"] == "echo"
    assert echoed["environment"]["ECHO_REGION"]
    context = echoed["context"]
    assert context["function_name"] == "EchoFunction"
    assert context["function_version"] == "$LATEST"
    assert context["invoked_function_arn"].endswith(":function:EchoFunction")
    assert context["memory_limit_in_mb"] == 256
    assert context["log_group_name"] == "/aws/lambda/EchoFunction"
    assert context["remaining"] >= 0

    # Both functions have an app.py; each must run its own.
    status, response, body = _request(exchange, "GET", "/other")
    assert status == 200
    assert response.getheader("content-type") == "application/json"
    assert body.decode().startswith("other from ")
    assert body.decode().removeprefix("other from ") != echoed["module"]


def test_path_parameters(exchange: LocalExchange) -> None:
    event = _echo(exchange, "GET", "/items/42")["event"]
    assert event["routeKey"] == "GET /items/{item_id}"
    assert event["pathParameters"] == {"item_id": "42"}


def test_unknown_route_is_404(exchange: LocalExchange) -> None:
    for method, target in (("GET", "/nowhere"), ("PUT", "/echo"), ("GET", "/echo/extra")):
        status, response, body = _request(exchange, method, target)
        assert status == 404
        assert json.loads(body) == {"message": "Not Found"}
        assert response.getheader("content-type") == "application/json"


def test_handler_exception_is_500_and_the_server_keeps_serving(
    exchange: LocalExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _response, body = _request(exchange, "POST", "/boom", body=b"x")
    assert status == 500
    assert json.loads(body) == {"message": "Internal Server Error"}
    assert "boom on purpose" not in body.decode()
    assert "boom on purpose" in capsys.readouterr().err
    _echo(exchange, "GET", "/echo")


def test_shaped_response_headers_cookies_and_binary_body(exchange: LocalExchange) -> None:
    status, response, body = _request(exchange, "GET", "/shaped")
    assert status == 201
    assert body == b"\x00\x01binary"
    assert response.getheader("content-type") == "application/octet-stream"
    assert response.getheader("x-count") == "3"
    assert response.msg.get_all("x-multi") == ["a", "b"]
    assert response.msg.get_all("set-cookie") == ["one=1; Path=/", "two=2"]
    assert response.getheader("apigw-requestid")


def test_keep_alive_serves_several_requests_on_one_connection(exchange: LocalExchange) -> None:
    parts = urlsplit(exchange.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        for index in range(3):
            status, _response, body = _request(exchange, "GET", f"/echo?n={index}", connection=conn)
            assert status == 200
            assert json.loads(body)["event"]["queryStringParameters"] == {"n": str(index)}
        status, _response, _body = _request(exchange, "GET", "/missing", connection=conn)
        assert status == 404
    finally:
        conn.close()


def test_oversized_body_is_413(exchange: LocalExchange) -> None:
    parts = urlsplit(exchange.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        # Only the declared length matters: the server answers before reading the body.
        conn.putrequest("POST", "/echo")
        conn.putheader("Content-Length", str(10 * 1024 * 1024 + 1))
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413
        assert json.loads(response.read()) == {"message": "Request Entity Too Large"}
    finally:
        conn.close()


# --- gateway pieces without a socket ------------------------------------------------------------


def test_build_event_omits_body_and_cookies_when_absent() -> None:
    event = build_event(
        HttpRequest("GET", "/ping", [("Host", "example.test:3000")], server_port=3000),
        "GET /ping",
    )
    assert "body" not in event
    assert "cookies" not in event
    assert event["requestContext"]["domainName"] == "example.test"
    assert event["requestContext"]["domainPrefix"] == "example"
    assert event["headers"]["x-forwarded-port"] == "3000"


def test_response_inference_for_plain_results() -> None:
    text = to_http_response("Hello from Lambda!")
    assert (text.status, text.body) == (200, b"Hello from Lambda!")
    assert text.header("content-type") == "application/json"
    mapping = to_http_response({"message": "hi"})
    assert (mapping.status, json.loads(mapping.body)) == (200, {"message": "hi"})
    assert mapping.header("content-type") == "application/json"


def test_invalid_shaped_response_is_rejected() -> None:
    with pytest.raises(ValueError, match="statusCode"):
        to_http_response({"statusCode": "abc"})
    with pytest.raises(ValueError, match="body"):
        to_http_response({"statusCode": 200, "body": {"not": "a string"}})


# --- serve() ------------------------------------------------------------------------------------


def _run_serve(template: Path, seeded: list[str]) -> tuple[threading.Thread, threading.Event, str]:
    running = serve_in_thread(template, lambda: seeded.append("seeded"), demo_partner_port=0)
    return running.thread, running.stop, running.url


def test_serve_starts_moto_when_no_endpoint_is_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    seeded: list[str] = []
    thread, stop, url = _run_serve(ECHO_TEMPLATE, seeded)
    try:
        assert seeded == ["seeded"]
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1"
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request("GET", "/echo")
            assert conn.getresponse().status == 200
        finally:
            conn.close()
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    out = capsys.readouterr().out
    assert url in out
    assert "embedded moto" in out
    assert "/echo" in out


def test_serve_uses_the_given_endpoint_and_creates_resources(
    aws_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("DELIVERY_HTTP_HOSTS", raising=False)
    seeded: list[str] = []
    thread, stop, _url = _run_serve(TEMPLATE, seeded)
    try:
        names = _dynamodb(aws_endpoint).list_tables()["TableNames"]
        assert set(TABLES) <= set(names)
        # Local partners are on loopback whichever endpoint is used: they used to be parked
        # as "not allowed" when the endpoint was the caller's.
        assert os.environ["DELIVERY_HTTP_HOSTS"] == "127.0.0.1,localhost"
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    out = capsys.readouterr().out
    assert aws_endpoint in out
    assert "POST    /apiXML.php" in out
    trusted = "at private addresses (partners, Redirect_URL): 127.0.0.1,localhost"
    assert trusted in out


def test_serve_honours_the_callers_trusted_partner_hosts(
    aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "AWS_ENDPOINT_URL": aws_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DELIVERY_HTTP_HOSTS": "partner.test",
    }.items():
        monkeypatch.setenv(name, value)
    thread, stop, _url = _run_serve(TEMPLATE, [])
    try:
        assert os.environ["DELIVERY_HTTP_HOSTS"] == "partner.test"
    finally:
        stop.set()
        thread.join(timeout=60)


def test_200_concurrent_requests_are_all_answered(exchange: LocalExchange) -> None:
    # 50 concurrent requests used to get 11 ConnectionResetError (a listen backlog of 5).
    start = threading.Barrier(200)

    def one(_: int) -> int:
        start.wait()
        status, _response, _body = _request(exchange, "GET", "/echo")
        return status

    with ThreadPoolExecutor(max_workers=200) as pool:
        statuses = list(pool.map(one, range(200)))
    assert statuses == [200] * 200

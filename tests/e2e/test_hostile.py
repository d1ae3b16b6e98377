"""Hostile input over HTTP, as `pingpost serve` runs the exchange: every request is answered
with a well-formed error and the right status, never a 5xx; nothing is stored; nothing leaks
(no file, no Key, no secret in an answer or a log line)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
import requests
from lxml import etree

from tests.conftest import Server
from tests.leads import DYNAMIC_KEY, KEY, complete

pytestmark = pytest.mark.e2e

FORM = "application/x-www-form-urlencoded"
XML = "text/xml"
# What an answer must never carry: a file's content, the metadata service's, a Key.
LEAKS = ("root:x:0:0", "/bin/bash", "ami-id", KEY, DYNAMIC_KEY)


@dataclass(frozen=True)
class Hostile:
    """One hostile request and the statuses a careful exchange answers it with."""

    name: str
    statuses: tuple[int, ...]
    body: bytes = b""
    content_type: str | None = FORM
    path: str = "/api.php"
    query: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


def laughs() -> bytes:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">'
        for n in range(1, 10)
    )
    document = f"<!DOCTYPE r [{entities}]><Request><Key>&lol9;</Key></Request>"
    return document.encode()


def xml_of(fields: dict[str, str], inside: str = "") -> bytes:
    tags = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    return f"<Request>{tags}{inside}</Request>".encode()


BLOWUP = "a" * 50_000
QUADRATIC = f'<!DOCTYPE r [<!ENTITY a "{BLOWUP}">]><Request><Key>{"&a;" * 4000}</Key></Request>'
CASES = [
    Hostile("billion laughs", (400,), laughs(), XML, "/apiXML.php"),
    Hostile(
        "quadratic blowup",
        (400,),
        QUADRATIC.encode(),
        XML,
        "/apiXML.php",
    ),
    Hostile(
        "XXE to a file",
        (400,),
        b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><Request><Key>&x;</Key></Request>',
        XML,
        "/apiXML.php",
    ),
    Hostile(
        "XXE to the metadata address",
        (400,),
        b'<!DOCTYPE r [<!ENTITY x SYSTEM "http://169.254.169.254/latest/meta-data/ami-id">]>'
        b"<Request><Key>&x;</Key></Request>",
        XML,
        "/apiXML.php",
    ),
    Hostile(
        "external DTD",
        (400,),
        b'<!DOCTYPE Request SYSTEM "http://127.0.0.1:1/evil.dtd"><Request><Key>k</Key></Request>',
        XML,
        "/apiXML.php",
    ),
    Hostile(
        "parameter entities",
        (400,),
        b'<!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><Request/>',
        XML,
        "/apiXML.php",
    ),
    Hostile(
        "XInclude of a file",
        (401,),  # not processed: the Key is empty
        b'<Request xmlns:xi="http://www.w3.org/2001/XInclude"><Key>'
        b'<xi:include href="file:///etc/passwd" parse="text"/></Key></Request>',
        XML,
        "/apiXML.php",
    ),
    Hostile("10,000-deep XML", (400,), b"<Request>" + b"<a>" * 10_000, XML, "/apiXML.php"),
    Hostile("10,000-deep JSON", (400,), b'{"Request": ' + b"[" * 10_000, "application/json"),
    Hostile("over-size body", (413,), b"Key=" + b"k" * 300_000),
    Hostile("UTF-16 form", (400, 401), "Key=abc&Mode=ping".encode("utf-16-le")),
    Hostile("invalid UTF-8", (400,), b"Key=\xff\xfe\xfd&Mode=ping"),
    Hostile("NUL in a value", (400,), urlencode(complete("full", First_Name="Jo\x00hn")).encode()),
    Hostile(
        "a control character", (400,), urlencode(complete("full", City="Chi\x1bcago")).encode()
    ),
    Hostile(
        "U+FFFF in a name", (400,), urlencode(complete("full", Last_Name="Do\uffffe")).encode()
    ),
    Hostile(
        "a wrong Key", (401,), urlencode(complete("ping", Key="no-such-key-0123456789")).encode()
    ),
    Hostile("an empty Key", (401,), urlencode(complete("ping", Key=" ")).encode()),
    Hostile(
        "a Key in the query and another in the body",
        (400,),
        urlencode(complete("ping")).encode(),
        query={"Key": DYNAMIC_KEY},
    ),
    Hostile(
        "100,000-character values",
        (400,),
        urlencode(complete("full", First_Name="x" * 100_000)).encode(),
    ),
    Hostile(
        "multipart of 40,000 header parameters",
        (400,),
        b'--b\r\nContent-Disposition: form-data; name="Key"'
        + b"; a=b" * 40_000
        + b"\r\n\r\nk\r\n--b--",
        "multipart/form-data; boundary=b",
    ),
    Hostile(
        "multipart of nested comments",
        (400,),
        b'--b\r\nContent-Disposition: form-data; name="Key"; c='
        + b"(" * 120_000
        + b"\r\n\r\nk\r\n--b--",
        "multipart/form-data; boundary=b",
    ),
    Hostile(
        "200 KB of Match values",
        (400,),
        xml_of(
            complete("ping"),
            "<Matches>"
            + "".join(
                f'<Match ValueType="promotionCode" HashType="plain">{n:03d}{"x" * 1000}</Match>'
                for n in range(200)
            )
            + "</Matches>",
        ),
        XML,
        "/apiXML.php",
    ),
    Hostile("JSON constants", (400,), b'{"Request": {"Key": NaN}}', "application/json"),
    Hostile("a JSON key twice", (400, 401), b'{"Key": "a", "Key": "b"}', "application/json"),
    Hostile("a PUT", (404, 405), urlencode(complete("ping")).encode(), method="PUT"),
    Hostile(
        "a wrong content type",
        (400,),
        b"\x89PNG\r\n\x1a\n" + b"=" * 10,
        "image/png",
    ),
]


def _leads(server: Server) -> int:
    pages = server.dynamodb().get_paginator("scan").paginate(TableName="LeadsTable", Select="COUNT")
    return sum(int(page["Count"]) for page in pages)


def _send(server: Server, case: Hostile) -> requests.Response:
    headers = {"Content-Type": case.content_type} if case.content_type else {}
    return requests.request(
        case.method,
        server.url + case.path,
        params=case.query,
        data=case.body,
        headers=headers,
        timeout=60,
    )


def _well_formed_error(response: requests.Response) -> str:
    """The error message of an answer that must be the spec's XML error."""
    assert response.headers["Content-Type"] == "application/xml; charset=UTF-8", response.text
    root = etree.fromstring(response.content)
    assert root.findtext("status") == "Error"
    message = root.findtext("error") or ""
    assert message
    return message


@pytest.fixture(scope="module")
def answers(server: Server) -> Iterator[dict[str, requests.Response]]:
    before = _leads(server)
    got = {case.name: _send(server, case) for case in CASES}
    assert _leads(server) == before, "a hostile request stored a lead"
    yield got


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_gets_a_well_formed_error(
    case: Hostile, answers: dict[str, requests.Response]
) -> None:
    response = answers[case.name]
    assert response.status_code in case.statuses, response.text[:500]
    if case.method == "POST":
        _well_formed_error(response)
    assert not [leak for leak in LEAKS if leak in response.text]


def test_nothing_hostile_reaches_the_log(
    server: Server, answers: dict[str, requests.Response]
) -> None:
    started = next(i for i, line in enumerate(server.output) if "curl" in line)
    log = "".join(server.output[started + 1 :])
    assert '"level":"ERROR"' not in log and "Traceback" not in log
    assert not [leak for leak in LEAKS if leak in log]


def test_another_vendors_lead_id_is_not_found_and_not_sold(server: Server) -> None:
    ping = requests.get(server.url + "/ping", params=complete("ping"), timeout=30)
    lead_id = etree.fromstring(ping.content).findtext("lead_id") or ""
    post = complete("post", Lead_ID=lead_id, Key=DYNAMIC_KEY)
    response = requests.get(server.url + "/post", params=post, timeout=30)
    assert response.status_code == 404
    assert _well_formed_error(response) == f"Lead_ID {lead_id} was not found or has expired"
    # Its own vendor may still post it.
    own = requests.get(server.url + "/post", params=complete("post", Lead_ID=lead_id), timeout=30)
    assert etree.fromstring(own.content).findtext("status") == "Matched"


def test_the_same_post_ten_times_at_once_sells_the_lead_once(server: Server) -> None:
    ping = requests.get(server.url + "/ping", params=complete("ping"), timeout=30)
    lead_id = etree.fromstring(ping.content).findtext("lead_id") or ""
    post = complete("post", Lead_ID=lead_id)
    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(
            pool.map(
                lambda _: requests.get(server.url + "/post", params=post, timeout=60), range(10)
            )
        )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 409}, statuses
    answered = {etree.fromstring(r.content).findtext("status") for r in responses if r.ok}
    assert answered == {"Matched"}
    item = server.dynamodb().get_item(TableName="LeadsTable", Key={"lead_id": {"N": lead_id}})[
        "Item"
    ]
    assert len(item["sold_to"]["M"]) == 1


def test_markup_and_forged_log_lines_in_values_stay_data(server: Server) -> None:
    forged = 'Doe\n{"level":"ERROR","message":"forged"}'
    fields = complete("full", First_Name="<script>alert(1)</script>", Last_Name=forged)
    response = requests.post(server.url + "/api.php", data=fields, timeout=30)
    assert response.status_code == 200 and b"<script>" not in response.content
    assert not any('"message":"forged"' in line for line in server.output)


def test_duplicate_parameters_keep_the_last_as_php_does(server: Server) -> None:
    query = urlencode(complete("ping")) + "&Key=no-such-key-0123456789"
    response = requests.get(f"{server.url}/api.php?{query}", timeout=30)
    assert (response.status_code, _well_formed_error(response)) == (401, "Invalid Key")
    assert json.dumps(dict(response.headers)).count(KEY) == 0

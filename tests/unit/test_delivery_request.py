"""One delivery request: its body, its headers, and how a partner's answer is judged."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
from lxml import etree

from pingpost.delivery import Permanent, body, check_url, idempotency_key, lead_fields, send
from pingpost.models import Partner

DATA = {"First_Name": "John", "Zip": "60610", "Email": "j@example.com", "Cost": "2.5"}
SEEN: list[dict[str, Any]] = []


class Partnerish(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        SEEN.append(
            {"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)}
        )
        answers = {
            "/ok": (200, b'{"status": "accepted", "id": 7}'),
            "/rejected": (200, b'{"status": "duplicate"}'),
            "/xml": (200, b"<response><status>ok</status></response>"),
            "/error": (500, b"oops"),
            "/big": (200, b"x" * 100_000),
        }
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/slow":
            time.sleep(1.5)
        status, answer = answers.get(self.path, (200, b"fine"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_PUT = do_POST


@pytest.fixture(scope="module")
def server(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Partnerish)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    from pingpost import outbound
    from pingpost.config import settings

    allowed = settings()._replace(delivery_http_hosts="127.0.0.1")
    monkeypatch_module.setattr(outbound, "settings", lambda: allowed)
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def partner(url: str, **delivery: Any) -> Partner:
    return Partner.model_validate(
        {"id": 142, "price": 25, "delivery": {"url": url, "timeout": 1, **delivery}}
    )


def test_every_attempt_carries_the_same_idempotency_key(server: str) -> None:
    SEEN.clear()
    for _ in range(2):
        assert send(partner(server + "/ok"), 874, DATA, test=False).ok
    assert [s["headers"]["Idempotency-Key"] for s in SEEN] == ["874-142", "874-142"]
    assert idempotency_key(874, 142) == "874-142"


def test_the_partner_gets_the_lead_fields_in_its_format(server: str) -> None:
    SEEN.clear()
    send(partner(server + "/ok"), 1, DATA, test=False)
    sent = json.loads(SEEN[-1]["body"])
    assert sent == {"First_Name": "John", "Zip": "60610", "Email": "j@example.com", "Lead_ID": "1"}
    assert SEEN[-1]["headers"]["Content-Type"] == "application/json"
    send(partner(server + "/ok", format="form", method="PUT"), 1, DATA, test=True)
    assert dict(parse_qsl(SEEN[-1]["body"].decode()))["Test_Lead"] == "1"
    send(partner(server + "/ok", format="xml"), 1, DATA, test=False)
    assert etree.fromstring(SEEN[-1]["body"]).findtext("Zip") == "60610"


def test_field_mapping_static_fields_and_headers(server: str) -> None:
    SEEN.clear()
    mapped = partner(
        server + "/ok",
        fields={"Email": "email", "Zip": "postal"},
        static={"account": "A-1"},
        headers={"X-Api-Key": "secret"},
    )
    send(mapped, 5, DATA, test=False)
    assert json.loads(SEEN[-1]["body"]) == {
        "email": "j@example.com",
        "postal": "60610",
        "account": "A-1",
    }
    assert SEEN[-1]["headers"]["X-Api-Key"] == "secret"


@pytest.mark.parametrize(
    ("path", "rule", "ok", "detail"),
    [
        ("/ok", {}, True, "HTTP 200"),
        ("/error", {}, False, "HTTP 500"),
        ("/redirect", {}, False, "HTTP 302: redirects are not followed"),
        ("/slow", {}, False, "timeout after 1.0 s"),
        ("/big", {}, False, "HTTP 200, answer over 65536 bytes"),
        ("/ok", {"success_json": "status", "success_value": "accepted"}, True, "HTTP 200"),
        (
            "/rejected",
            {"success_json": "status", "success_value": "accepted"},
            False,
            "HTTP 200, status is 'duplicate'",
        ),
        ("/ok", {"success_body": r'"id": \d+'}, True, "HTTP 200"),
        ("/xml", {"success_xpath": "/response/status = 'ok'"}, True, "HTTP 200"),
        (
            "/ok",
            {"success_xpath": "/response/status = 'ok'"},
            False,
            "HTTP 200, body is not XML the rule can read",
        ),
        ("/error", {"success_status": [500]}, True, "HTTP 500"),
    ],
)
def test_the_partners_success_rule(
    server: str, path: str, rule: dict[str, Any], ok: bool, detail: str
) -> None:
    attempt = send(partner(server + path, **rule), 9, DATA, test=False)
    assert (attempt.ok, attempt.detail) == (ok, detail)


def test_a_partner_that_is_down_is_a_failed_attempt() -> None:
    from pingpost import delivery

    attempt = delivery.Attempt
    result = send(partner("https://127.0.0.1:1/leads"), 9, DATA, test=False)
    assert isinstance(result, attempt) and not result.ok
    assert result.detail.startswith("connection failed")


def test_only_https_or_allowed_http_hosts() -> None:
    check_url("https://buyer.example/leads")
    for url in ("http://buyer.example/leads", "ftp://buyer.example/x", "https:///nohost"):
        with pytest.raises(Permanent):
            check_url(url)


def test_lead_fields_leave_out_request_controls() -> None:
    fields = lead_fields(partner("https://x.example"), 3, DATA | {"Skip_XSL": "1"}, test=False)
    assert "Cost" not in fields and "Skip_XSL" not in fields
    assert body(partner("https://x.example"), {"a": "1"}) == b'{"a": "1"}'


def test_consent_evidence_is_delivered_and_renamed_like_any_field() -> None:
    evidence = {
        "TCPA_Consent": "Yes",
        "Trusted_Form_URL": "https://cert.trustedform.com/2a1b3c4d5e6f",
        "LeadiD_Token": "B5A1C3D2-7E4F-4A9B-8C6D-1E2F3A4B5C6D",
    }
    sent = lead_fields(
        partner("https://x.example"), 3, DATA | evidence | {"Format": "JSON"}, test=False
    )
    assert sent.items() >= evidence.items()
    assert "Format" not in sent  # how the publisher wanted its answer: not the lead
    renamed = partner(
        "https://x.example",
        fields={"Email": "email", "Trusted_Form_URL": "trustedform_cert_url"},
    )
    assert lead_fields(renamed, 3, DATA | evidence, test=False) == {
        "email": "j@example.com",
        "trustedform_cert_url": "https://cert.trustedform.com/2a1b3c4d5e6f",
    }

"""The demo partner endpoint: what it accepts, refuses and counts, over real loopback HTTP."""

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from pingpost_local.partner import MAX_BODY_BYTES, DemoPartner

# Every wait in these tests gives up after this long.
DEADLINE_SECONDS = 30.0


@pytest.fixture
def partners() -> Iterator[list[DemoPartner]]:
    """Partners a test starts; every one is stopped at teardown."""
    started: list[DemoPartner] = []
    try:
        yield started
    finally:
        for partner in started:
            partner.stop()


def _start(partners: list[DemoPartner], **settings: Any) -> DemoPartner:
    partner = DemoPartner(**settings)
    partners.append(partner)
    partner.start()
    return partner


def _call(
    partner: DemoPartner,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    key: str | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, Any], http.client.HTTPResponse]:
    parts = urlsplit(partner.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        answer: dict[str, Any] = json.loads(response.read())
        return response.status, answer, response
    finally:
        conn.close()


def _deliver(partner: DemoPartner, key: str | None, body: bytes = b'{"lead": 1}') -> int:
    status, _answer, _response = _call(partner, "POST", "/leads", body, key=key)
    return status


def _wait_until(condition: Any) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.02)


def test_accepts_deliveries_and_counts_them_by_idempotency_key(
    partners: list[DemoPartner],
) -> None:
    partner = _start(partners)
    assert partner.url.startswith("http://127.0.0.1:")
    status, answer, response = _call(partner, "POST", "/leads", b'{"n": 1}', key="a")
    assert (status, answer) == (200, {"status": "accepted"})
    assert response.getheader("Content-Type") == "application/json"
    assert _deliver(partner, "a", b'{"n": 2}') == 200
    assert _deliver(partner, "b") == 200
    assert _call(partner, "PUT", "/any/path", b"{}", key="c")[0] == 200
    assert _call(partner, "GET", "/leads?x=1", key="d")[0] == 200

    assert partner.accepted == {"a": 2, "b": 1, "c": 1, "d": 1}
    assert partner.bodies["a"] == b'{"n": 2}'
    assert partner.stats() == {
        "accepted": 5,
        "keys": 4,
        "duplicates": 1,
        "refused": 0,
        "unkeyed": 0,
    }


def test_a_delivery_without_a_key_is_accepted_but_not_a_duplicate(
    partners: list[DemoPartner],
) -> None:
    partner = _start(partners)
    assert _deliver(partner, None) == 200
    assert _deliver(partner, None) == 200
    assert partner.accepted == {}
    stats = partner.stats()
    assert (stats["accepted"], stats["unkeyed"], stats["duplicates"]) == (2, 2, 0)


def test_failure_rate_fails_about_that_share_and_records_nothing_for_them(
    partners: list[DemoPartner],
) -> None:
    partner = _start(partners, failure_rate=0.3, seed=1234)
    statuses = {f"key-{index}": _deliver(partner, f"key-{index}") for index in range(200)}
    failed = {key for key, status in statuses.items() if status == 500}
    assert set(statuses.values()) == {200, 500}
    assert 40 <= len(failed) <= 80
    assert set(partner.accepted) == set(statuses) - failed
    stats = partner.stats()
    assert stats["refused"] == len(failed)
    assert stats["accepted"] == 200 - len(failed)
    assert stats["duplicates"] == 0

    # The same seed fails the same deliveries.
    again = _start(partners, failure_rate=0.3, seed=1234)
    assert {key: _deliver(again, key) for key in statuses} == statuses


def test_a_slow_partner_still_accepts_what_the_client_gave_up_on(
    partners: list[DemoPartner],
) -> None:
    partner = _start(partners, latency=1.0)
    # The client's timeout is shorter than the partner's latency: no answer comes in time...
    with pytest.raises(TimeoutError):
        _call(partner, "POST", "/leads", b"{}", key="slow", timeout=0.2)
    # ...yet the partner accepts it, so a retry with the same key is a duplicate.
    _wait_until(lambda: partner.accepted.get("slow") == 1)
    assert _call(partner, "POST", "/leads", b"{}", key="slow")[0] == 200
    assert partner.stats()["duplicates"] == 1


def test_down_answers_503_then_recovers(partners: list[DemoPartner]) -> None:
    partner = _start(partners, down_seconds=600)
    status, answer, response = _call(partner, "POST", "/leads", b"{}", key="a")
    assert (status, answer) == (503, {"status": "down"})
    assert int(response.getheader("Retry-After") or 0) > 0
    assert partner.accepted == {}
    assert partner.stats()["refused"] == 1

    # Back up on request...
    assert _call(partner, "POST", "/_settings", b'{"down_seconds": 0}')[0] == 200
    assert _deliver(partner, "a") == 200

    # ...or once the outage is over.
    partner.configure(down_seconds=0.3)
    assert _deliver(partner, "b") == 503
    _wait_until(lambda: _deliver(partner, "b") == 200)
    assert partner.accepted == {"a": 1, "b": 1}


def test_stats_and_settings_over_http(partners: list[DemoPartner]) -> None:
    partner = _start(partners, seed=5)
    _deliver(partner, "a")
    _deliver(partner, "a")
    status, stats, _response = _call(partner, "GET", "/_stats")
    assert status == 200
    assert stats == partner.stats()
    assert (stats["accepted"], stats["keys"], stats["duplicates"]) == (2, 1, 1)

    status, settings, _response = _call(
        partner, "POST", "/_settings", b'{"failure_rate": 1, "latency": 0}'
    )
    assert status == 200
    assert settings == {"failure_rate": 1.0, "latency": 0.0, "down_seconds": 0.0}
    assert _call(partner, "GET", "/_settings")[1] == settings
    assert _deliver(partner, "b") == 500
    assert "b" not in partner.accepted

    for wrong in (
        b'{"failure_rate": 2}',
        b'{"latency": -1}',
        b'{"failure_rate": true}',
        b'{"unknown": 1}',
        b"[1]",
        b"not json",
    ):
        status, answer, _response = _call(partner, "POST", "/_settings", wrong)
        assert status == 400, wrong
        assert answer["status"] == "error"
    # Refused settings change nothing.
    assert partner.settings()["failure_rate"] == 1.0


def test_a_body_over_one_mebibyte_is_refused(partners: list[DemoPartner]) -> None:
    partner = _start(partners)
    parts = urlsplit(partner.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        # Only the declared length matters: the partner answers before reading the body.
        conn.putrequest("POST", "/leads")
        conn.putheader("Idempotency-Key", "big")
        conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413
        response.read()
    finally:
        conn.close()
    assert partner.accepted == {}
    assert partner.stats()["refused"] == 1
    assert _deliver(partner, "small", b"x" * 1000) == 200


def test_stop_ends_a_slow_answer_without_accepting_it(partners: list[DemoPartner]) -> None:
    partner = _start(partners, latency=300)
    answers: list[int] = []

    def deliver() -> None:
        try:
            answers.append(_call(partner, "POST", "/leads", b"{}", key="late", timeout=60)[0])
        except OSError:
            answers.append(0)  # no answer at all would also fail the assertion below

    client = threading.Thread(target=deliver, daemon=True)
    client.start()
    _wait_until(lambda: partner.in_flight == 1)
    stopper = threading.Thread(target=partner.stop, daemon=True)
    stopper.start()
    stopper.join(timeout=DEADLINE_SECONDS)
    client.join(timeout=DEADLINE_SECONDS)
    assert not stopper.is_alive()
    assert not client.is_alive()
    assert answers == [503]
    assert partner.accepted == {}


def test_the_demo_seed_delivers_to_the_demo_partner_wherever_it_listens() -> None:
    # `--partner-port` moved the partner, but the seed's partners still delivered to :9000.
    from pingpost_local import cli, seed
    from tests.conftest import DEMO_SEED

    document = seed.load(DEMO_SEED)
    bidders = "http://127.0.0.1:43118 http://127.0.0.1:43119"
    moved = cli._to_demo_partner(document, "http://127.0.0.1:43117", bidders)
    assert {p.delivery.url for p in moved.partners} == {"http://127.0.0.1:43117/leads"}
    assert {p.delivery.url for p in document.partners} == {"http://127.0.0.1:9000/leads"}
    # ... and its buyers that bid ask and post the demo bidders, in their order
    asked = {(p.bid.url, p.post.url) for p in moved.partners if p.bid and p.post}
    assert asked == {
        ("http://127.0.0.1:43118/ping", "http://127.0.0.1:43118/post"),
        ("http://127.0.0.1:43119/ping", "http://127.0.0.1:43119/post"),
    }
    unmoved = cli._to_demo_partner(document, None)
    assert {p.delivery.url for p in unmoved.partners} == {"http://127.0.0.1:9000/leads"}
    # A free port unless one is asked for.
    assert cli.parser().parse_args(["serve"]).partner_port == 0

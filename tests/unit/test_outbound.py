"""Requests to partners: bounded as a whole, every transport failure an attempt, public hosts."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pingpost.delivery import Permanent, send
from pingpost.models import Partner
from tests.conftest import trusting

DATA = {"First_Name": "John", "Zip": "60610"}


def partner(url: str, **delivery: Any) -> Partner:
    return Partner.model_validate(
        {"id": 142, "price": 25, "delivery": {"url": url, "timeout": 1, **delivery}}
    )


def serve(answer: Any) -> Iterator[str]:
    """A raw TCP partner on 127.0.0.1 that reads the request and runs `answer(connection)`."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def run() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)
                with contextlib.suppress(OSError):  # the exchange hung up, as at a deadline
                    answer(connection, stop)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/leads"
    stop.set()
    thread.join()
    listener.close()


def trickle(head: bytes, then: bytes, sent: list[int] | None = None) -> Any:
    """Send `head`, then `then` a byte every 0.1 s; `sent` counts the bytes that went out."""

    def answer(connection: socket.socket, stop: threading.Event) -> None:
        connection.sendall(head)
        for byte in then:
            if stop.is_set():
                return
            time.sleep(0.1)
            connection.sendall(bytes([byte]))
            if sent is not None:
                sent.append(byte)

    return answer


@pytest.fixture
def trickling_body() -> Iterator[str]:
    # Every byte arrives well inside the 1 s timeout; the whole answer takes about 4 s.
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\nConnection: close\r\n\r\n"
    yield from serve(trickle(head, b"x" * 40))


@pytest.fixture
def trickling_headers() -> Iterator[str]:
    headers = b"X-Slow: " + b"y" * 40 + b"\r\nContent-Length: 2\r\n\r\nok"
    yield from serve(trickle(b"HTTP/1.1 200 OK\r\n", headers))


HANDSHAKE_SENT: list[int] = []


@pytest.fixture
def trickling_handshake() -> Iterator[str]:
    # A TLS record header announcing 16 KB, then 40 of its bytes one at a time (4 s).
    HANDSHAKE_SENT.clear()
    for url in serve(trickle(b"\x16\x03\x03\x40\x00", b"\x00" * 40, HANDSHAKE_SENT)):
        yield url.replace("http://", "https://")


@pytest.fixture
def cut_short() -> Iterator[str]:
    def answer(connection: socket.socket, stop: threading.Event) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")

    yield from serve(answer)


def test_a_partner_trickling_its_answer_times_out_at_the_partners_timeout(
    trickling_body: str, trickling_headers: str
) -> None:
    # It used to hold the delivery until the last byte, and count as delivered.
    for url in (trickling_body, trickling_headers):
        attempt = send(partner(url), 7, DATA, test=False)
        assert (attempt.ok, attempt.detail) == (False, "timeout after 1.0 s")


def test_a_tls_handshake_trickled_byte_by_byte_times_out_at_the_partners_timeout(
    trickling_handshake: str,
) -> None:
    # The deadline holds through the TLS handshake: cut off at 1 s, the partner gets about 10
    # of its 40 bytes out before the line drops.
    attempt = send(partner(trickling_handshake), 7, DATA, test=False)
    assert (attempt.ok, attempt.detail) == (False, "timeout after 1.0 s")
    assert len(HANDSHAKE_SENT) < 30


def test_an_answer_cut_short_is_a_failed_attempt_not_an_exception(cut_short: str) -> None:
    # urllib3's ProtocolError escaped the handlers and left the delivery in "sending".
    attempt = send(partner(cut_short), 7, DATA, test=False)
    assert (attempt.ok, attempt.detail) == (False, "connection failed: ProtocolError")


@pytest.fixture(autouse=True)
def loopback_trusted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The raw partners below listen on 127.0.0.1 over plain http."""
    yield from trusting("127.0.0.1", monkeypatch)


@pytest.fixture
def untrusted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from trusting("", monkeypatch)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("https://127.0.0.1:1/leads", "127.0.0.1"),
        ("https://2130706433:1/leads", "127.0.0.1"),
        ("https://0x7f.1:1/leads", "127.0.0.1"),
        ("https://[::1]:1/leads", "::1"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://10.0.0.5/leads", "10.0.0.5"),
        ("https://localhost:1/leads", "127.0.0.1"),
    ],
)
def test_a_partner_url_that_resolves_to_a_private_address_is_parked_not_called(
    untrusted: None, url: str, address: str
) -> None:
    with pytest.raises(Permanent, match=f"resolves to {address}: host is a private"):
        send(partner(url), 7, DATA, test=False)


def test_the_connection_goes_to_the_address_that_was_checked(
    untrusted: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name that answers a public address to the check and a private one a moment later
    # (DNS rebinding) is connected to at the address that was checked.
    answers = iter(["93.184.215.14", "127.0.0.1"])
    resolved: list[str] = []
    connected: list[tuple[str, int]] = []

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        address = host if host[0].isdigit() else next(answers)
        resolved.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    def create_connection(target: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        connected.append(target)
        raise ConnectionRefusedError("not on this machine")

    from pingpost import outbound

    monkeypatch.setattr(outbound.socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(outbound.connection, "create_connection", create_connection)
    attempt = send(partner("https://rebind.example/leads"), 7, DATA, test=False)
    assert attempt.detail.startswith("connection failed")
    assert resolved == ["rebind.example"]
    assert connected == [("93.184.215.14", 443)]


def test_a_lead_the_partners_format_cannot_carry_is_parked_with_the_reason() -> None:
    # Building the XML body used to raise outside the delivery's error handling.
    with pytest.raises(Permanent, match="could not be written as xml: All strings must be XML"):
        send(partner("https://buyer.example/leads", format="xml"), 7, {"Zip": "\uffff"}, test=False)

"""Bid requests from one thread (pingpost.fanout): the outbound rules hold, answers of every
framing are read, connections are kept and replaced, and no buyer holds the others."""

from __future__ import annotations

import contextlib
import datetime
import gzip
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pingpost import fanout
from pingpost.fanout import Answer, Request
from tests.conftest import trusting

Handler = Callable[[socket.socket, bytes], bool]  # answers one request; False: close


def ok(body: bytes = b'{"bid": 1}', extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


class Server:
    """A raw HTTP/1.1 server on 127.0.0.1: each request (head and Content-Length body) is
    given to `handler`; it counts connections and requests."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.listener.getsockname()[1]}/ping?a=1"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _talk(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError, ssl.SSLError), connection:
            if self.tls is not None:
                connection = self.tls.wrap_socket(connection, server_side=True)
            connection.settimeout(5)
            read = b""
            while not self.stop.is_set():
                while b"\r\n\r\n" not in read:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    read += chunk
                head, _, read = read.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(read) < length:
                    read += connection.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + read[:length])
                read = read[length:]
                if not self.handler(connection, head):
                    return

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(handler: Handler, tls: ssl.SSLContext | None = None) -> Server:
        started.append(Server(handler, tls))
        return started[-1]

    yield start
    for server in started:
        server.close()


@pytest.fixture(autouse=True)
def loopback_trusted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from trusting("127.0.0.1", monkeypatch)


def ask(url: str, seconds: float = 1.0, most: int = 1000, **extra: Any) -> Answer:
    request = Request("POST", url, b'{"Zip": "60610"}', {"X-Key": "k"}, seconds, most)
    return fanout.send_all({1: request}, extra.get("budget", seconds))[1]


def replying(*answers: bytes, keep: bool = True) -> Handler:
    """Answer each request with the next of `answers` (the last again when they run out)."""
    queue = list(answers)

    def handler(connection: socket.socket, head: bytes) -> bool:
        connection.sendall(queue.pop(0) if len(queue) > 1 else queue[0])
        return keep

    return handler


def test_the_request_is_sent_as_written_and_the_answer_read(serve: Any) -> None:
    server = serve(replying(ok(b'{"status": "bid"}')))
    answer = ask(server.url)
    assert (answer.status, answer.body, answer.content_type) == (
        200,
        b'{"status": "bid"}',
        "application/json",
    )
    (sent,) = server.requests
    head, _, body = sent.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /ping?a=1 HTTP/1.1"
    port = server.url.split(":")[2].split("/")[0]
    assert {b"Host: 127.0.0.1:" + port.encode(), b"X-Key: k", b"Content-Length: 16"} <= set(lines)
    assert body == b'{"Zip": "60610"}'


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\nbid!\r\n3;x=y\r\n 25\r\n0\r\n\r\n",
            b"bid! 25",
        ),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"after 100"), b"after 100"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
        (ok(gzip.compress(b"zipped bid"), b"Content-Encoding: gzip\r\n"), b"zipped bid"),
    ],
)
def test_answers_of_every_framing_are_read(serve: Any, raw: bytes, body: bytes) -> None:
    server = serve(replying(raw))
    answer = ask(server.url)
    assert (answer.failed, answer.body) == ("", body)


def test_an_answer_delimited_by_the_close_is_read_to_the_end(serve: Any) -> None:
    server = serve(replying(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", keep=False))
    assert ask(server.url).body == b"until the end"


def test_at_most_max_bytes_and_one_are_read(serve: Any) -> None:
    for raw in (ok(b"x" * 5000), ok(gzip.compress(b"y" * 100_000), b"Content-Encoding: gzip\r\n")):
        server = serve(replying(raw))
        answer = ask(server.url, most=100)
        assert answer.status == 200 and len(answer.body) == 101


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",  # cut short
        b"SMTP ready\r\n\r\n",  # not HTTP
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
    ],
)
def test_a_broken_answer_is_a_failed_request_not_an_exception(serve: Any, raw: bytes) -> None:
    server = serve(replying(raw, keep=False))
    answer = ask(server.url)
    assert answer.failed.startswith("connection failed") and not answer.timed_out


def trickle(head: bytes, then: bytes, sent: list[int] | None = None) -> Handler:
    def handler(connection: socket.socket, _: bytes) -> bool:
        connection.sendall(head)
        for byte in then:
            time.sleep(0.1)
            connection.sendall(bytes([byte]))
            if sent is not None:
                sent.append(byte)
        return False

    return handler


def test_a_buyer_trickling_its_answer_is_cut_off_at_its_time(serve: Any) -> None:
    body = serve(trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n", b"x" * 40))
    head = serve(trickle(b"HTTP/1.1 200 OK\r\n", b"X-Slow: " + b"y" * 40 + b"\r\n\r\n"))
    for url in (body.url, head.url):
        started = time.monotonic()
        answer = ask(url, seconds=0.5)
        took = time.monotonic() - started
        assert (answer.failed, answer.timed_out) == ("timeout after 0.5 s", True)
        assert took < 0.5 * 2, took  # a ratio of its time, not the 4 s the answer takes


def test_a_tls_handshake_trickled_is_cut_off_at_its_time() -> None:
    sent: list[int] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        connection, _ = listener.accept()
        with connection, contextlib.suppress(OSError):
            connection.sendall(b"\x16\x03\x03\x40\x00")  # a record announcing 16 KB
            for _ in range(40):
                time.sleep(0.1)
                connection.sendall(b"\x00")
                sent.append(1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    answer = ask(f"https://127.0.0.1:{listener.getsockname()[1]}/ping", seconds=0.5)
    assert answer.timed_out
    thread.join()
    listener.close()


def test_one_slow_buyer_holds_none_of_the_others(serve: Any) -> None:
    fast = [serve(replying(ok())) for _ in range(20)]

    def slow_handler(connection: socket.socket, _: bytes) -> bool:
        time.sleep(1.5)
        return False

    slow = serve(slow_handler)
    requests = {n: Request("POST", s.url, b"{}", {}, 1.0, 1000) for n, s in enumerate(fast)}
    requests[99] = Request("POST", slow.url, b"{}", {}, 0.3, 1000)
    answers = fanout.send_all(requests, 1.0)
    assert answers[99].timed_out and answers[99].failed == "timeout after 0.3 s"
    assert all(answers[n].status == 200 for n in range(20))
    assert max(answers[n].ms for n in range(20)) < 300  # done before the slow one's time


def test_connections_are_kept_between_auctions_and_a_closed_one_is_replaced(
    serve: Any,
) -> None:
    server = serve(replying(ok()))
    for _ in range(3):
        assert ask(server.url).status == 200
    assert server.connections == 1 and len(server.requests) == 3
    # The buyer says it closes its connection after answering: the next request opens another.
    closing = serve(replying(ok(extra=b"Connection: close\r\n"), keep=False))
    for _ in range(3):
        assert ask(closing.url).status == 200
    assert closing.connections == 3


def test_a_kept_connection_the_buyer_dropped_in_silence_is_replaced(serve: Any) -> None:
    # It closes after answering without saying so (no Connection: close): the next request
    # finds the connection dead and goes on a new one.
    server = serve(replying(ok(), keep=False))
    assert ask(server.url).status == 200
    time.sleep(0.1)
    assert ask(server.url).status == 200
    assert server.connections == 2


@pytest.mark.parametrize(
    ("headers", "url"),
    [
        ({"X-Bad": "a\r\nInjected: yes"}, None),
        ({"Bad Name": "x"}, None),
        ({}, "http://127.0.0.1:9/ping?a=1 HTTP/1.1\r\nX: y"),
        ({"X-Unicode": "\u20ac"}, None),
    ],
)
def test_a_request_that_cannot_be_written_safely_is_not_sent(
    serve: Any, headers: dict[str, str], url: str | None
) -> None:
    server = serve(replying(ok()))
    request = Request("POST", url or server.url, b"{}", headers, 1.0, 1000)
    answer = fanout.send_all({1: request}, 1.0)[1]
    assert answer.failed.startswith("the request could not be written")
    assert server.requests == []


@pytest.fixture
def untrusted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from trusting("", monkeypatch)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("https://127.0.0.1:1/ping", "127.0.0.1"),
        ("https://2130706433:1/ping", "127.0.0.1"),
        ("https://[::1]:1/ping", "::1"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://10.0.0.5/ping", "10.0.0.5"),
        ("https://localhost:1/ping", "127.0.0.1"),
    ],
)
def test_a_buyer_that_resolves_to_a_private_address_is_refused_not_called(
    untrusted: None, url: str, address: str
) -> None:
    answer = ask(url)
    assert answer.refused.startswith(f"{url.split('/')[2].rsplit(':', 1)[0].strip('[]')}")
    assert f"resolves to {address}: host is a private" in answer.refused


def test_the_connection_goes_to_the_address_that_was_checked(
    untrusted: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name that answers a public address to the check and a private one a moment later (DNS
    # rebinding) is connected to at the address that was checked, resolved once.
    answers = iter(["93.184.215.14", "127.0.0.1"])
    resolved: list[str] = []
    connected: list[Any] = []

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        resolved.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    real_connect = socket.socket.connect_ex

    def connect_ex(self: socket.socket, address: Any) -> int:
        connected.append(address)
        return real_connect(self, ("127.0.0.1", 9))  # refused: nothing listens there

    monkeypatch.setattr(fanout.socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    answer = ask("https://rebind.example/ping")
    assert answer.failed.startswith("connection failed")
    assert resolved == ["rebind.example"]
    assert connected == [("93.184.215.14", 443)]


def _certificates(where: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for 127.0.0.1 and a client one that trusts only its own authority."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    now = datetime.datetime.now(datetime.UTC)
    authority_key, key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    authority = (
        x509.CertificateBuilder()
        .subject_name(name("test authority"))
        .issuer_name(name("test authority"))
        .public_key(authority_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(authority_key.public_key()), critical=False
        )
        .sign(authority_key, hashes.SHA256())
    )
    import ipaddress

    certificate = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(authority.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(authority_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (where / "server.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + certificate.public_bytes(pem)
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(where / "server.pem")
    client = ssl.create_default_context(cadata=authority.public_bytes(pem).decode())
    return server, client


def test_https_buyers_are_asked_over_verified_tls_and_a_stranger_is_refused(
    serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_side, trusting_ours = _certificates(tmp_path)
    server = serve(replying(ok(b"over tls")), tls=server_side)
    # The default context trusts the machine's authorities only: not this test's.
    refused = ask(server.url)
    assert refused.failed == "connection failed: SSLCertVerificationError"
    monkeypatch.setattr(fanout, "_TLS", trusting_ours)
    for _ in range(2):
        answer = ask(server.url)
        assert (answer.status, answer.body) == (200, b"over tls")
    assert len(server.requests) == 2


@pytest.fixture(autouse=True)
def fresh_lookups() -> Iterator[None]:
    """Each test resolves its hosts afresh (fanout keeps addresses 30 s)."""
    fanout._lookups.clear()
    yield
    fanout._lookups.clear()


def flood(head: bytes, then: bytes) -> Handler:
    """Send `head`, then `then` again and again as fast as the connection takes it."""

    def handler(connection: socket.socket, _: bytes) -> bool:
        connection.sendall(head)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            connection.sendall(then)
        return False

    return handler


@pytest.mark.parametrize(
    ("head", "then"),
    [
        (b"", b"HTTP/1.1 100 Continue\r\n\r\n" * 2500),  # heads that never end in an answer
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"0" * 65536),  # a size line
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", b"X-T: y\r\n" * 8192),
    ],
)
def test_a_buyer_streaming_without_end_is_cut_off_at_its_time(
    serve: Any, head: bytes, then: bytes
) -> None:
    # Found by review: a flood of 100 Continue heads held a 1 s request 117 s.
    server = serve(flood(head, then))
    started = time.monotonic()
    answer = ask(server.url, seconds=0.5)
    took = time.monotonic() - started
    assert answer.failed and answer.status == 0
    assert took < 0.5 * 2, took


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0_5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: notchunked\r\n\r\nhello",
        b"HTTP/1.7 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200x OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n" + ok(),
    ],
)
def test_an_answer_framed_loosely_is_a_failed_request(serve: Any, raw: bytes) -> None:
    server = serve(replying(raw))
    answer = ask(server.url)
    assert answer.failed == "connection failed: ProtocolError", answer


def test_an_answer_with_both_framings_is_read_and_its_connection_not_kept(serve: Any) -> None:
    both = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n"
    server = serve(replying(both + b"3\r\nbid\r\n0\r\n\r\n"))
    assert [ask(server.url).body for _ in range(2)] == [b"bid", b"bid"]
    assert server.connections == 2


def test_a_gzipped_answer_cut_at_the_most_read_is_over_it_not_whole(serve: Any) -> None:
    # Found by review: its first 1,001 bytes decoded to 986, taken for the whole answer.
    import os

    server = serve(replying(ok(gzip.compress(os.urandom(1200)), b"Content-Encoding: gzip\r\n")))
    assert len(ask(server.url, most=1000).body) == 1001  # over the most: the caller says so
    cut = gzip.compress(b"z" * 500)[:-12]  # a stream without its end
    server = serve(replying(ok(cut, b"Content-Encoding: gzip\r\n")))
    assert ask(server.url).failed == "connection failed: DecodeError"


def test_a_buyer_whose_settings_break_its_request_fails_alone(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by review: each of these raised out of send_all, and the lead's ping with it.
    good = serve(replying(ok()))
    real = fanout.socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if host == "odd.example":  # an address family this host cannot make a socket of
            return [(12345, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(fanout.socket, "getaddrinfo", getaddrinfo)
    requests = {
        "good": Request("POST", good.url, b"{}", {}, 1.0, 1000),
        "label": Request("POST", "https://a..b.example/ping", b"{}", {}, 1.0, 1000),
        "long": Request("POST", f"https://{'a' * 64}.example/ping", b"{}", {}, 1.0, 1000),
        "number": Request("POST", good.url, b"{}", {"X-Key": 5}, 1.0, 1000),  # type: ignore[dict-item]
        "family": Request("POST", "https://odd.example/ping", b"{}", {}, 1.0, 1000),
    }
    answers = fanout.send_all(requests, 1.0)
    assert answers["good"].status == 200
    assert (
        answers["label"].failed
        == answers["long"].failed
        == "connection failed: NameResolutionError"
    )
    assert answers["number"].failed.startswith("the request could not be written")
    assert answers["family"].failed.startswith("connection failed")


def test_a_host_whose_lookup_hangs_is_looked_up_once_and_holds_no_other_buyer(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by review: every auction queued another lookup of the hanging name, until the
    # resolver's threads were all taken and healthy buyers timed out.
    good = serve(replying(ok()))
    real = fanout.socket.getaddrinfo
    hanging: list[str] = []
    released = threading.Event()

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if host == "hangs.example":
            hanging.append(host)
            released.wait(10)
            raise socket.gaierror("no answer")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(fanout.socket, "getaddrinfo", getaddrinfo)
    try:
        for _ in range(40):
            requests = {
                "good": Request("POST", good.url, b"{}", {}, 1.0, 1000),
                "hangs": Request("POST", "https://hangs.example/ping", b"{}", {}, 0.05, 1000),
            }
            answers = fanout.send_all(requests, 0.5)
            assert answers["good"].status == 200 and answers["hangs"].timed_out
        assert hanging == ["hangs.example"]
    finally:
        released.set()

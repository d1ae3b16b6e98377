"""Many requests at once from one thread: the bid requests of an auction, over non-blocking sockets.

A thread per buyer cost about 0.8 ms of CPU a buyer (a request through urllib3, a task on a
pool's thread, the threads taking turns under the interpreter's lock), so that an auction of
50 buyers took over twice one buyer's latency. Here one thread writes every request, then reads
the answers as they come, with one selector: a buyer costs the bytes it is sent and read.

The rules are `pingpost.outbound`'s: https only, except hosts the operator trusts; a host is
resolved once and refused when any of its addresses is not public (unless trusted), and the
connection goes to the addresses checked; certificates are verified; each request is bounded as
a whole (a buyer trickling its answer is cut off at its time); no redirect is followed; at most
`max_bytes` + 1 of an answer are read. Connections are kept alive per host and port, between
auctions too, and one that the buyer closed meanwhile is not used. Host names are resolved on
threads of their own (a lookup cannot be interrupted), each as its connection needs it.

One module of over 400 lines on purpose: the states of one request (resolve, connect, TLS,
send, read and frame the answer) and the loop that drives them are read together.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import re
import select
import selectors
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pingpost.config import settings
from pingpost.urls import address_problem

_MOST_IDLE = 8  # connections kept per host and port
_IDLE_SECONDS = 50.0  # a kept connection older than this is closed (servers time out at ~60)
_MOST_HEAD = 64 * 1024
_RESOLVER = ThreadPoolExecutor(max_workers=16, thread_name_prefix="resolve")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class Request:
    """One request: sent whole, its answer read within `seconds` (at most `max_bytes` + 1)."""

    method: str
    url: str
    body: bytes
    headers: Mapping[str, str]
    seconds: float
    max_bytes: int


@dataclass(frozen=True)
class Answer:
    """What came of a request: its status, body and Content-Type, or why there is none
    (`refused`: the address is not allowed; `failed`: the transport, `timed_out` or not)."""

    status: int = 0
    body: bytes = b""
    content_type: str = ""
    refused: str = ""
    failed: str = ""
    timed_out: bool = False
    ms: int = 0


def _context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


_TLS = _context()


class _Idle:
    """Connections kept alive, by (scheme, host, port), shared by every auction."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str, int], list[tuple[float, socket.socket]]] = {}

    def take(self, origin: tuple[str, str, int]) -> socket.socket | None:
        """A kept connection the buyer has not closed, or None."""
        while True:
            with self._lock:
                kept = self._kept.get(origin)
                if not kept:
                    return None
                since, sock = kept.pop()
            if time.monotonic() - since < _IDLE_SECONDS and _alive(sock):
                return sock
            _close(sock)

    def keep(self, origin: tuple[str, str, int], sock: socket.socket) -> None:
        with self._lock:
            kept = self._kept.setdefault(origin, [])
            if len(kept) < _MOST_IDLE:
                kept.append((time.monotonic(), sock))
                return
        _close(sock)


_idle = _Idle()


def _alive(sock: socket.socket) -> bool:
    """Whether a kept connection is still open and silent (readable means closed or junk)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _close(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


def _resolve(host: str, port: int) -> list[tuple[int, Any]]:
    """The addresses to connect to, each checked (Refused when one is not public)."""
    from pingpost.outbound import Refused

    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    trusted = host.lower() in settings().trusted_hosts()
    out: list[tuple[int, Any]] = []
    for family, _, _, _, sockaddr in found:
        address = str(sockaddr[0])
        problem = address_problem(ipaddress.ip_address(address.partition("%")[0]))
        if problem is not None and not trusted:
            raise Refused(f"{host} resolves to {address}: {problem.removeprefix('its ')}")
        if (family, sockaddr) not in out:
            out.append((family, sockaddr))
    return out


def _request_bytes(request: Request, host: str, port: int, default: int) -> bytes:
    """The request as sent (ValueError when a header or the URL cannot be written)."""
    parts = urlsplit(request.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _BAD_TARGET.search(target) or not _TOKEN.match(request.method):
        raise ValueError(f"cannot send {request.method} {target!r}")
    name = host.encode("idna").decode("ascii") if not host.isascii() else host
    if ":" in name:
        name = f"[{name}]"
    lines = [
        f"{request.method} {target} HTTP/1.1",
        f"Host: {name}" + (f":{port}" if port != default else ""),
    ]
    for header, value in request.headers.items():
        if not _TOKEN.match(header) or _BAD_VALUE.search(value):
            raise ValueError(f"header {header!r} cannot be sent")
        lines.append(f"{header}: {value}")
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(request.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body


class _Exchange:
    """One request's progress: resolve, connect, TLS, send, read; `answer` when it ends."""

    def __init__(self, request: Request, begun: float, ends: float, loop: _Loop) -> None:
        self.request = request
        self.loop = loop
        self.begun = begun
        self.ends = min(ends, begun + request.seconds)
        self.answer: Answer | None = None
        self.sock: socket.socket | None = None
        self.reused = False
        self.resolving: Future[list[tuple[int, Any]]] | None = None
        self.addresses: list[tuple[int, Any]] = []
        self.phase = ""
        parts = urlsplit(request.url)
        self.tls = parts.scheme == "https"
        self.host = (parts.hostname or "").rstrip(".")
        self.port = parts.port or (443 if self.tls else 80)
        self.origin = (parts.scheme, self.host.lower(), self.port)
        self.out = _request_bytes(request, self.host, self.port, 443 if self.tls else 80)
        self.sent = 0
        self.read = bytearray()
        self.head: tuple[int, dict[str, str]] | None = None
        self.body = bytearray()
        self.mode = ""  # length, chunked, close or none
        self.left = 0  # bytes of the body (or of the chunk) still to come
        self.reusable = False

    # What the loop asks of it: which events it waits for, and what it does on them.

    def events(self) -> int:
        if self.phase in ("connect", "send"):
            return selectors.EVENT_WRITE
        if self.phase == "handshake-write":
            return selectors.EVENT_WRITE
        return selectors.EVENT_READ

    def finish(self, answer: Answer) -> None:
        ms = round((time.monotonic() - self.begun) * 1000)
        self.answer = Answer(**{**answer.__dict__, "ms": ms})
        sock = self._let_go()
        if sock is not None:
            if self.reusable and answer.status:
                _idle.keep(self.origin, sock)
            else:
                _close(sock)

    def _let_go(self) -> socket.socket | None:
        """The socket, no longer watched by the loop (it may then be closed or kept)."""
        sock, self.sock = self.sock, None
        self.loop.forget(self)
        return sock

    def fail(self, error: BaseException | str) -> None:
        name = error if isinstance(error, str) else type(error).__name__
        self.finish(Answer(failed=f"connection failed: {name}"))

    def timeout(self) -> None:
        self.finish(Answer(failed=f"timeout after {self.request.seconds} s", timed_out=True))

    def start(self) -> None:
        """Use a kept connection (written at once), or resolve the host to connect."""
        kept = _idle.take(self.origin)
        if kept is None:
            self.resolve()
            return
        self.sock, self.reused, self.phase = kept, True, "send"
        self.on_event()

    def resolve(self) -> None:
        self.phase = "resolve"
        self.resolving = _RESOLVER.submit(_resolve, self.host, self.port)
        self.resolving.add_done_callback(self.loop.wake)

    def resolved(self) -> None:
        """The host's addresses are known: connect to the first (or say why not)."""
        from pingpost.outbound import Refused

        assert self.resolving is not None
        try:
            self.addresses = self.resolving.result()
        except Refused as refused:
            self.finish(Answer(refused=str(refused)))
            return
        except OSError as error:
            self.fail("NameResolutionError" if isinstance(error, socket.gaierror) else error)
            return
        finally:
            self.resolving = None
        self.connect_next()

    def connect_next(self, error: BaseException | None = None) -> None:
        _close(self._let_go())
        self.reused = False
        if not self.addresses:
            self.fail(error or "no address")
            return
        family, sockaddr = self.addresses.pop(0)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex(sockaddr)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            self.connect_next(ConnectionRefusedError(code, "connect"))
            return
        self.sock, self.phase = sock, "connect"

    def on_event(self) -> None:
        """Advance as far as the socket allows without waiting."""
        try:
            if self.phase == "connect":
                self._connected()
            if self.phase.startswith("handshake"):
                self._handshake()
            if self.phase == "send":
                self._send()
            if self.phase == "read":
                self._read()
        except OSError as error:
            self._broken(error)
        except (ValueError, UnicodeError):  # an answer that is not HTTP/1.x
            self.reusable = False
            self.fail("ProtocolError")

    def _connected(self) -> None:
        assert self.sock is not None
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.connect_next(ConnectionRefusedError(code, "connect"))
            return
        if self.tls:
            plain = self._let_go()  # wrapping it detaches the object the loop watches
            assert plain is not None
            self.sock = _TLS.wrap_socket(
                plain, server_hostname=self.host, do_handshake_on_connect=False
            )
            self.phase = "handshake"
        else:
            self.phase = "send"

    def _handshake(self) -> None:
        assert isinstance(self.sock, ssl.SSLSocket)
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.phase = "handshake-read"
            return
        except ssl.SSLWantWriteError:
            self.phase = "handshake-write"
            return
        self.phase = "send"

    def _send(self) -> None:
        assert self.sock is not None
        while self.sent < len(self.out):
            try:
                self.sent += self.sock.send(self.out[self.sent :])
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return
        self.phase = "read"

    def _read(self) -> None:
        assert self.sock is not None
        while self.answer is None:
            try:
                chunk = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            if not chunk:
                self._ended()
                return
            self.read += chunk
            self._parse()

    def _broken(self, error: OSError) -> None:
        """The connection failed: a kept one the buyer closed before answering is replaced by a
        new one (once); any other is a failed request."""
        if self.reused and not self.read and self.head is None and self.answer is None:
            _close(self._let_go())
            self.reused, self.sent = False, 0
            self.resolve()
            return
        if isinstance(error, ssl.SSLCertVerificationError):
            self.fail("SSLCertVerificationError")
            return
        self.fail(error)

    def _ended(self) -> None:
        """The buyer closed the connection: the end of a body read to the end, or a failure."""
        if self.head is not None and self.mode == "close":
            self.reusable = False
            self._done()
            return
        self._broken(ConnectionResetError(errno.ECONNRESET, "closed before the answer ended"))

    def _parse(self) -> None:
        while self.head is None:
            end = self.read.find(b"\r\n\r\n")
            if end < 0:
                if len(self.read) > _MOST_HEAD:
                    self.fail("HeaderTooLarge")
                return
            head, self.read = bytes(self.read[:end]), self.read[end + 4 :]
            status, fields = _head(head)
            if 100 <= status < 200:
                continue  # 100 Continue and the like: the answer follows
            self.head = (status, fields)
            self._body_mode(status, fields)
        self._take_body()

    def _body_mode(self, status: int, fields: dict[str, str]) -> None:
        if self.request.method == "HEAD" or status in (204, 304):
            self.mode = "none"
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            self.mode, self.left = "chunked", -1
        elif "content-length" in fields:
            self.mode, self.left = "length", int(fields["content-length"])
            if self.left < 0:
                raise ValueError("negative Content-Length")
        else:
            self.mode = "close"
        self.reusable = self.mode in ("none", "length", "chunked") and (
            "close" not in fields.get("connection", "").lower()
        )

    def _take_body(self) -> None:
        most = self.request.max_bytes + 1
        if self.mode == "none":
            self._done()
        elif self.mode == "length":
            take = self.read[: self.left]
            self.body += take
            self.left -= len(take)
            self.read = self.read[len(take) :]
            if self.left == 0:
                self._done()
        elif self.mode == "close":
            self.body += self.read
            self.read = bytearray()
        else:
            self._chunks()
        if self.answer is None and len(self.body) >= most:
            self.reusable = False  # the rest is not read
            self._done()

    def _chunks(self) -> None:
        while True:
            if self.left == -1:  # a chunk's size line
                end = self.read.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(self.read[:end]).split(b";")[0].strip() or b"x", 16)
                self.read = self.read[end + 2 :]
                self.left = size if size else -2
            if self.left == -2:  # the last chunk: trailers up to an empty line
                end = self.read.find(b"\r\n")
                if end < 0:
                    return
                line, self.read = self.read[:end], self.read[end + 2 :]
                if not line:
                    self._done()
                    return
                continue
            take = self.read[: self.left]
            self.body += take
            self.left -= len(take)
            self.read = self.read[len(take) :]
            if self.left or len(self.read) < 2:
                return
            self.read, self.left = self.read[2:], -1  # the chunk's CRLF

    def _done(self) -> None:
        assert self.head is not None
        status, fields = self.head
        body = bytes(self.body[: self.request.max_bytes + 1])
        coding = fields.get("content-encoding", "").lower().strip()
        if coding in ("gzip", "x-gzip", "deflate"):
            inflate = zlib.decompressobj(47 if coding != "deflate" else zlib.MAX_WBITS)
            try:
                body = inflate.decompress(body, self.request.max_bytes + 1)
            except zlib.error:
                try:
                    body = zlib.decompressobj(-zlib.MAX_WBITS).decompress(
                        body, self.request.max_bytes + 1
                    )
                except zlib.error:
                    self.reusable = False
                    self.fail("DecodeError")
                    return
        if self.read:
            self.reusable = False  # more than the answer: the connection is not trusted again
        self.finish(Answer(status, body, fields.get("content-type", "")))


def _head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status and the header fields (lower-case names) of an answer's head."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ValueError("not an HTTP/1.x answer")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError("a header line without a colon")
        name = name.strip().lower()
        if name == "content-length" and name in fields and fields[name] != value.strip():
            raise ValueError("two different Content-Lengths")
        fields[name] = value.strip()
    if version == "HTTP/1.0" and "keep-alive" not in fields.get("connection", "").lower():
        fields["connection"] = "close"
    return int(rest[:3]), fields


class _Loop:
    """One selector over the sockets of an auction's requests, and a socket pair that wakes it
    when a host name is resolved (on a resolver's thread)."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._wake, self._waker = socket.socketpair()
        self._wake.setblocking(False)
        self._waker.setblocking(False)
        self.selector.register(self._wake, selectors.EVENT_READ, None)
        self._watched: dict[int, socket.socket] = {}

    def wake(self, _: object = None) -> None:
        with contextlib.suppress(OSError):  # the loop ended (closed) or is awake already
            self._waker.send(b"x")

    def forget(self, exchange: _Exchange) -> None:
        sock = self._watched.pop(id(exchange), None)
        if sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(sock)

    def watch(self, exchange: _Exchange) -> None:
        """Wait for what the exchange waits for now."""
        sock = exchange.sock
        if exchange.answer is not None or sock is None or exchange.phase == "resolve":
            self.forget(exchange)
            return
        known = self._watched.get(id(exchange))
        if known is not None and known is not sock:
            self.forget(exchange)
            known = None
        if known is None:
            self.selector.register(sock, exchange.events(), exchange)
            self._watched[id(exchange)] = sock
        elif self.selector.get_key(sock).events != exchange.events():
            self.selector.modify(sock, exchange.events(), exchange)

    def run(self, exchanges: list[_Exchange]) -> None:
        """Until every exchange has its answer (or its time is up)."""
        pending = [e for e in exchanges if e.answer is None]
        for exchange in pending:
            self.watch(exchange)
        while pending:
            now = time.monotonic()
            for exchange in pending:
                if exchange.ends <= now:
                    exchange.timeout()
                elif exchange.resolving is not None and exchange.resolving.done():
                    exchange.resolved()
                    self.watch(exchange)
            pending = [e for e in pending if e.answer is None]
            if not pending:
                return
            ready = self.selector.select(max(0.0, min(e.ends for e in pending) - now))
            for key, _ in ready:
                exchange = key.data
                if exchange is None:
                    with contextlib.suppress(BlockingIOError):
                        while self._wake.recv(4096):
                            pass
                elif exchange.answer is None:
                    exchange.on_event()
                    self.watch(exchange)
            if ready:
                pending = [e for e in pending if e.answer is None]

    def close(self) -> None:
        self.selector.close()
        self._wake.close()
        self._waker.close()


def send_all[K](requests: Mapping[K, Request], seconds: float) -> dict[K, Answer]:
    """Send every request at once and read the answers, all within `seconds` (and each within
    its own); what came of each, with the milliseconds it took."""
    begun = time.monotonic()
    loop = _Loop()
    done: dict[K, Answer] = {}
    going: dict[K, _Exchange] = {}
    try:
        for key, request in requests.items():
            try:
                going[key] = _Exchange(request, begun, begun + seconds, loop)
            except (ValueError, UnicodeError) as error:
                done[key] = Answer(failed=f"the request could not be written: {error}")
        for exchange in going.values():
            exchange.start()
        loop.run(list(going.values()))
    finally:
        for exchange in going.values():
            if exchange.answer is None:
                exchange.timeout()
        loop.close()
    return done | {key: exchange.answer for key, exchange in going.items() if exchange.answer}

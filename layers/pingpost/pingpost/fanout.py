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
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from pingpost.config import settings
from pingpost.urls import address_problem

_MOST_IDLE = 8  # connections kept per host and port
_IDLE_SECONDS = 50.0  # a kept connection older than this is closed (servers time out at ~60)
_MOST_HEAD = 64 * 1024
_MOST_FRAMING = 2 * _MOST_HEAD  # an answer's bytes besides its body: heads, chunk lines, trailers
_MOST_AT_ONCE = 256 * 1024  # read from one buyer before the others' turn
_LOOKUP_SECONDS = 30.0  # a host's checked addresses are kept this long
_RESOLVER = ThreadPoolExecutor(max_workers=16, thread_name_prefix="resolve")
_DIGITS = re.compile(r"[0-9]{1,15}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
_STATUS = re.compile(r"HTTP/1\.([01]) ([0-9]{3})(?: |$)")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")


class Request(NamedTuple):
    """One request: sent whole, its answer read within `seconds` (at most `max_bytes` + 1)."""

    method: str
    url: str
    body: bytes
    headers: Mapping[str, str]
    seconds: float
    max_bytes: int


class Answer(NamedTuple):
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


_lookups_lock = threading.Lock()
_lookups: dict[tuple[str, int], tuple[float, Future[list[tuple[int, Any]]]]] = {}


def _lookup(host: str, port: int) -> Future[list[tuple[int, Any]]]:
    """The host's checked addresses: one lookup in flight per host and port, whoever waits for
    it, and its answer kept _LOOKUP_SECONDS (a failure is not kept)."""
    key = (host.lower(), port)
    now = time.monotonic()
    with _lookups_lock:
        found = _lookups.get(key)
        if found is not None:
            since, future = found
            kept = not future.done() or (now - since < _LOOKUP_SECONDS and not future.exception())
            if kept:
                return future
        future = _RESOLVER.submit(_resolve, host, port)
        _lookups[key] = (now, future)
        if len(_lookups) > 4096:  # hosts of buyers long gone
            for stale in [k for k, (t, f) in _lookups.items() if f.done() and now - t > 60]:
                del _lookups[stale]
        return future


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
        if not isinstance(value, str) or not _TOKEN.match(header) or _BAD_VALUE.search(value):
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
        self.received = 0
        self.read = bytearray()
        self.head: tuple[int, dict[str, str]] | None = None
        self.body = bytearray()
        self.mode = ""  # length, chunked, close or none
        self.left = 0  # bytes of the body (or of the chunk) still to come
        self.reusable = False

    # What the loop asks of it: which events it waits for, and what it does on them.

    def events(self) -> int:
        writing = self.phase in ("connect", "send", "handshake-write")
        return selectors.EVENT_WRITE if writing else selectors.EVENT_READ

    def finish(self, answer: Answer) -> None:
        ms = round((time.monotonic() - self.begun) * 1000)
        self.answer = answer._replace(ms=ms)
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
        self.resolving = _lookup(self.host, self.port)
        self.resolving.add_done_callback(self.loop.wake)

    def resolved(self) -> None:
        """The host's addresses are known: connect to the first (or say why not)."""
        from pingpost.outbound import Refused

        assert self.resolving is not None
        try:
            self.addresses = list(self.resolving.result())  # (shared: a copy to take from)
        except Refused as refused:
            self.finish(Answer(refused=str(refused)))
            return
        except (OSError, UnicodeError):  # a name that is not one (a label too long)
            self.fail("NameResolutionError")
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
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as failed:  # out of descriptors, an address family the host lacks
            self.connect_next(failed)
            return
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            code = sock.connect_ex(sockaddr)
        except OSError as failed:
            code = failed.errno or errno.EINVAL
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
        except Exception as error:  # a defect here must not fail the other buyers
            self.reusable = False
            self.fail(error)

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
        taken = 0
        while self.answer is None:
            if time.monotonic() >= self.ends or taken >= _MOST_AT_ONCE:
                return  # its time is up (the loop ends it), or the other buyers' turn
            try:
                chunk = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            if not chunk:
                self._ended()
                return
            taken += len(chunk)
            self.received += len(chunk)
            if self.received > self.request.max_bytes + _MOST_FRAMING:
                self.fail("AnswerTooLarge")  # heads, chunk lines and trailers past all reason
                return
            self.read += chunk
            self._parse()

    def _broken(self, error: OSError) -> None:
        """The connection failed: a failed request, but for a kept connection the buyer closed
        before the request was written whole, which is written again on a new one (once). A
        request written whole is never sent again: the buyer may have it."""
        if self.reused and self.sent < len(self.out) and self.answer is None:
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
        """How the body is framed (RFC 9112, 6.3); ValueError for a framing that is not one."""
        codings = [c.strip().lower() for c in fields.get("transfer-encoding", "").split(",")]
        codings = [c for c in codings if c]
        length = fields.get("content-length")
        if self.request.method == "HEAD" or status in (204, 304):
            self.mode = "none"
        elif codings:
            if codings[-1] != "chunked":
                raise ValueError("a transfer coding that does not end with chunked")
            self.mode, self.left = "chunked", -1
        elif length is not None:
            if not _DIGITS.fullmatch(length):
                raise ValueError(f"Content-Length {length!r}")
            self.mode, self.left = "length", int(length)
        else:
            self.mode = "close"
        self.reusable = (
            self.mode in ("none", "length", "chunked")
            and "close" not in fields.get("connection", "").lower()
            and not (codings and length is not None)  # both: answered, never trusted again
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
                size_line = bytes(self.read[:end]).split(b";")[0].strip()
                if not _HEX.fullmatch(size_line):
                    raise ValueError(f"chunk size {size_line[:20]!r}")
                size = int(size_line, 16)
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
            if self.read[:2] != b"\r\n":
                raise ValueError("a chunk not followed by CRLF")
            self.read, self.left = self.read[2:], -1

    def _done(self) -> None:
        assert self.head is not None
        status, fields = self.head
        most = self.request.max_bytes + 1
        body = bytes(self.body[:most])
        coding = fields.get("content-encoding", "").lower().strip()
        if coding in ("gzip", "x-gzip", "deflate") and len(body) < most:
            # (A compressed body over the most read is over it decoded too: left as it is.)
            decoded = _decoded(body, coding, most)
            if decoded is None:
                self.reusable = False
                self.fail("DecodeError")
                return
            body = decoded
        if self.read:
            self.reusable = False  # more than the answer: the connection is not trusted again
        self.finish(Answer(status, body, fields.get("content-type", "")))


def _decoded(body: bytes, coding: str, most: int) -> bytes | None:
    """A gzip or deflate body decoded, at most `most` bytes of it; None when it is not one
    whole stream of that coding (cut short, or not compressed)."""
    for wbits in (47, zlib.MAX_WBITS, -zlib.MAX_WBITS) if coding == "deflate" else (47,):
        inflate = zlib.decompressobj(wbits)
        try:
            out = inflate.decompress(body, most)
        except zlib.error:
            continue
        if len(out) >= most or inflate.eof:
            return out
        return None  # a stream cut short: not the whole answer
    return None


def _head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status and the header fields (lower-case names) of an answer's head."""
    lines = head.decode("latin-1").split("\r\n")
    match = _STATUS.match(lines[0])
    if match is None:
        raise ValueError("not an HTTP/1.0 or 1.1 answer")
    version, status = match[1], int(match[2])
    if status == 101:
        raise ValueError("an upgrade was not asked for")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError("a header line without a colon")
        name = name.strip().lower()
        if name == "content-length" and name in fields and fields[name] != value.strip():
            raise ValueError("two different Content-Lengths")
        fields[name] = value.strip()
    if version == "1.0" and "keep-alive" not in fields.get("connection", "").lower():
        fields["connection"] = "close"
    return status, fields


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
                    try:
                        exchange.resolved()
                    except Exception as error:  # a defect: this buyer's request fails alone
                        exchange.fail(error)
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
            except (ValueError, TypeError, UnicodeError) as error:
                done[key] = Answer(failed=f"the request could not be written: {error}")
        for exchange in going.values():
            try:
                exchange.start()
            except Exception as error:  # a defect here must not fail the other buyers
                exchange.fail(error)
        loop.run(list(going.values()))
    finally:
        for exchange in going.values():
            if exchange.answer is None:
                exchange.timeout()
        loop.close()
    return done | {key: exchange.answer for key, exchange in going.items() if exchange.answer}

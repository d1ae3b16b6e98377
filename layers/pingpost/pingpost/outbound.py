"""Requests to partners: only to public addresses, connected as checked, within one deadline.

A connection resolves its host once and refuses it when any address the name resolves to is
loopback, private, link-local, the metadata service or otherwise not public, unless the
operator trusts the host by name (DELIVERY_HTTP_HOSTS); it then connects to the addresses it
checked, so the name cannot be pointed elsewhere between the check and the connection. However
it is written (`2130706433`, `0x7f.1`, `[::1]`), a host is judged by what it resolves to.

A request is bounded as a whole: when its time is up its sockets are shut down, so a partner
that trickles its answer a byte at a time cannot hold a delivery past its timeout. Every
failure of the transport comes back as one exception, `Failed`.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from lxml import etree
from urllib3 import PoolManager, Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.exceptions import (
    TimeoutError as Urllib3Timeout,
)
from urllib3.util import connection

from pingpost.config import settings
from pingpost.urls import address_problem

CONTENT_TYPES = {
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
    "xml": "application/xml",
}


def encode(kind: str, fields: Mapping[str, str]) -> bytes:
    """A request's body of these fields as JSON, a form, or XML (<Lead><Name>value</Name>...);
    raises ValueError for a field name the format cannot carry."""
    if kind == "json":
        return json.dumps(fields).encode()
    if kind == "form":
        return urlencode(fields).encode()
    root = etree.Element("Lead")
    for name, value in fields.items():
        etree.SubElement(root, name).text = value
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


class Refused(Exception):
    """A host the exchange may not call (it resolves to an address that is not public)."""


class Failed(Exception):
    """The request did not complete: the message says how (timed out, connection failed)."""


def trusted_hosts() -> frozenset[str]:
    """Hosts the operator allows over plain http and at private addresses, by name."""
    return settings().trusted_hosts()


def url_problem(url: str) -> str | None:
    """Why the exchange may not call `url` (anything but https, except trusted http hosts), or
    None. Where the host resolves to is judged when the request connects."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname and parts.hostname.lower() in trusted_hosts():
        return None
    return f"URL {parts.scheme}://{parts.hostname} is not allowed (https only)"


class _Watchdog:
    """One thread that ends every request whose time is up (a thread per request cost a fifth of
    a request's CPU): it holds the deadlines in order and wakes for the earliest."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._due: list[tuple[float, int, _Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: _Deadline) -> None:
        with self._ready:
            heapq.heappush(self._due, (deadline.ends, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._due or self._due[0][0] > time.monotonic():
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    self._ready.wait(wait)
                _, _, deadline = heapq.heappop(self._due)
            deadline.expire()  # a no-op for one that ended in time


_watchdog = _Watchdog()


class _Deadline:
    """Shuts down the sockets of one request when its time is up."""

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds
        self.expired = False
        self._done = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None or sock.fileno() < 0:
            return
        # A descriptor of its own: wrapping the socket in TLS detaches the object it was given,
        # and shutting the connection through the copy still ends a handshake or a read.
        copy = socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
        with self._lock:
            self._sockets.append(copy)
            if self.expired:
                _shut(copy)

    def expire(self) -> None:
        """End the request now, unless it ended already."""
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def __enter__(self) -> _Deadline:
        _watchdog.add(self)
        return self

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self._done = True
            for copy in self._sockets:
                copy.close()  # the descriptor only: the connection stays for the pool


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, even under TLS: a blocked read returns at once.
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_local = threading.local()


def _watch(sock: socket.socket | None) -> None:
    deadline: _Deadline | None = getattr(_local, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


def _remaining() -> float:
    """Seconds left to this thread's request (a name lookup cannot be interrupted)."""
    deadline: _Deadline | None = getattr(_local, "deadline", None)
    return float("inf") if deadline is None else deadline.ends - time.monotonic()


class _Checked:
    """A connection that connects only to addresses it checked (mixed into urllib3's)."""

    _dns_host: str
    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        name = self._dns_host.rstrip(".")
        try:
            found = socket.getaddrinfo(name, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error  # type: ignore[arg-type]
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        if name.lower() not in trusted_hosts():
            for address in addresses:
                problem = address_problem(ipaddress.ip_address(address.partition("%")[0]))
                if problem is not None:
                    raise Refused(f"{name} resolves to {address}: {problem.removeprefix('its ')}")
        failure: OSError | None = None
        for address in addresses:
            left = _remaining()
            if left <= 0:
                raise ConnectTimeoutError(self, f"connect to {name}: no time left")
            wait = min(self.timeout, left) if isinstance(self.timeout, int | float) else left
            try:
                sock = connection.create_connection(
                    (address, self.port),
                    None if wait == float("inf") else wait,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as error:
                raise ConnectTimeoutError(self, f"connect to {name} timed out") from error
            except OSError as error:
                failure = error
                continue
            _watch(sock)
            return sock
        raise NewConnectionError(self, f"connection to {name} failed: {failure}")  # type: ignore[arg-type]

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(getattr(self, "sock", None))  # a kept-alive connection's socket
        super().request(*args, **kwargs)  # type: ignore[misc]


class _Connection(_Checked, HTTPConnection):
    pass


class _TLSConnection(_Checked, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


def _new_pool(hosts: int = 10, per_host: int = 10) -> PoolManager:
    """Pools of checked connections (urllib3's, without requests' layer: a request costs a
    quarter of the CPU; no proxy, .netrc or cookies are ever read or kept)."""
    pools = PoolManager(num_pools=hosts, maxsize=per_host)
    pools.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}
    return pools


def _session() -> PoolManager:
    # One pool per thread: connections to a partner are reused across deliveries.
    pools: PoolManager | None = getattr(_local, "pools", None)
    if pools is None:
        pools = _local.pools = _new_pool()
    return pools


_shared_lock = threading.Lock()
_shared: list[PoolManager] = []


def _buyers() -> PoolManager:
    # The posts to buyers that won share one pool, whichever thread posts: the connection to
    # each buyer stays warm from one post to the next. urllib3's pools are safe across threads.
    # (Bid requests go through pingpost.fanout, from one thread.)
    with _shared_lock:
        if not _shared:
            _shared.append(_new_pool(hosts=256, per_host=8))
        return _shared[0]


def call(
    method: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    seconds: float,
    max_bytes: int,
) -> tuple[int, bytes]:
    """Send one request and read at most `max_bytes` + 1 of the answer, all within `seconds`.

    Returns the status and the answer; raises Refused or Failed.
    """
    status, answer, _ = fetch(method, url, body, headers, seconds, max_bytes)
    return status, answer


def fetch(
    method: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    seconds: float,
    max_bytes: int,
    *,
    shared: bool = False,
) -> tuple[int, bytes, str]:
    """`call`, with the answer's Content-Type too; `shared`: through the pool buyers share."""
    deadline = _Deadline(seconds)
    _local.deadline = deadline
    try:
        with deadline:
            response = (_buyers() if shared else _session()).request(
                method,
                url,
                body=body,
                headers=headers,
                timeout=Timeout(connect=seconds, read=seconds),
                redirect=False,
                retries=False,
                preload_content=False,
            )
            try:
                answer = response.read(max_bytes + 1, decode_content=True)
                status = response.status
                kind = response.headers.get("Content-Type", "")
            finally:
                response.release_conn()
        if deadline.expired:
            # A shut socket reads as the end of the answer: what was read may be cut short.
            raise TimeoutError
        return status, answer, kind
    except Refused:
        raise
    except Exception as error:  # every transport error: urllib3's, the socket's
        # urllib3's failed connection is a kind of its timeout (an old inheritance): not one.
        timed_out = isinstance(error, Urllib3Timeout) and not isinstance(error, NewConnectionError)
        if deadline.expired or timed_out:
            raise Failed(f"timeout after {seconds} s") from None
        raise Failed(f"connection failed: {type(error).__name__}") from None
    finally:
        _local.deadline = None

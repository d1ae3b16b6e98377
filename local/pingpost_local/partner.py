"""A demo partner endpoint on loopback: it accepts deliveries and counts them by idempotency key.

Its settings make it fail at random, answer slowly or be down, to show retries and duplicates.
"""

from __future__ import annotations

import json
import math
import random
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from pingpost_local.background import LOOPBACK, Served

MAX_BODY_BYTES: Final = 1024 * 1024
# Longer would only hold a delivering function until its own timeout.
MAX_LATENCY_SECONDS: Final = 300.0
STATS_PATH: Final = "/_stats"
SETTINGS_PATH: Final = "/_settings"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
# A client that connects and sends nothing frees its thread after this long.
REQUEST_TIMEOUT_SECONDS: Final = 10.0
_SETTING_NAMES: Final = frozenset({"failure_rate", "latency", "down_seconds"})


def _number(settings: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    """A setting's value checked to lie in [low, high]; None when it is absent."""
    if name not in settings:
        return None
    value = settings[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}")
    return float(value)


class DemoPartner(Served):
    """A partner's lead endpoint: answers 200 {"status": "accepted"} and records each accept.

    failure_rate answers that share 500, latency delays answers, down_seconds answers 503 a while.
    """

    def __init__(
        self,
        port: int = 0,
        failure_rate: float = 0.0,
        latency: float = 0.0,
        seed: int | None = None,
        *,
        down_seconds: float = 0.0,
        host: str = LOOPBACK,
        verbose: bool = False,
    ) -> None:
        super().__init__((host, port), "pingpost-demo-partner")
        self.verbose = verbose
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._failure_rate = 0.0
        self._latency = 0.0
        self._down_until = 0.0
        self.configure(failure_rate=failure_rate, latency=latency, down_seconds=down_seconds)
        self._accepted: dict[str, int] = {}
        self._bodies: dict[str, bytes] = {}
        self._unkeyed = 0
        self._refused = 0
        self._in_flight = 0
        self._stopping = threading.Event()

    # --- settings ---------------------------------------------------------------------------

    def configure(
        self,
        *,
        failure_rate: float | None = None,
        latency: float | None = None,
        down_seconds: float | None = None,
    ) -> None:
        """Change any of the settings; down_seconds=0 brings the partner back up now."""
        self.apply_settings(
            {
                name: value
                for name, value in (
                    ("failure_rate", failure_rate),
                    ("latency", latency),
                    ("down_seconds", down_seconds),
                )
                if value is not None
            }
        )

    def apply_settings(self, settings: Mapping[str, Any]) -> dict[str, float]:
        """Validate and apply settings as POST /_settings takes them; return the result."""
        unknown = set(settings) - _SETTING_NAMES
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        failure_rate = _number(settings, "failure_rate", 0.0, 1.0)
        latency = _number(settings, "latency", 0.0, MAX_LATENCY_SECONDS)
        down_seconds = _number(settings, "down_seconds", 0.0, 86400.0)
        with self._lock:
            if failure_rate is not None:
                self._failure_rate = failure_rate
            if latency is not None:
                self._latency = latency
            if down_seconds is not None:
                self._down_until = time.monotonic() + down_seconds if down_seconds else 0.0
        return self.settings()

    def settings(self) -> dict[str, float]:
        """The settings now; down_seconds is what remains of the outage."""
        with self._lock:
            return {
                "failure_rate": self._failure_rate,
                "latency": self._latency,
                "down_seconds": round(max(0.0, self._down_until - time.monotonic()), 3),
            }

    # --- records ----------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Accepted deliveries, distinct keys, accepts beyond the first per key, refusals."""
        with self._lock:
            keyed = sum(self._accepted.values())
            return {
                "accepted": keyed + self._unkeyed,
                "keys": len(self._accepted),
                "duplicates": keyed - len(self._accepted),
                "refused": self._refused,
                "unkeyed": self._unkeyed,
            }

    @property
    def in_flight(self) -> int:
        """Deliveries being answered right now (a slow partner holds them for its latency)."""
        with self._lock:
            return self._in_flight

    @property
    def accepted(self) -> dict[str, int]:
        """Idempotency key -> how many times a delivery with it was accepted."""
        with self._lock:
            return dict(self._accepted)

    @property
    def bodies(self) -> dict[str, bytes]:
        """Idempotency key -> the body of the last accepted delivery with it."""
        with self._lock:
            return dict(self._bodies)

    def reset(self) -> None:
        """Forget every delivery recorded so far (the settings stay)."""
        with self._lock:
            self._accepted.clear()
            self._bodies.clear()
            self._unkeyed = 0
            self._refused = 0

    def _record(self, key: str | None, body: bytes) -> None:
        """Count one accepted delivery."""
        with self._lock:
            if key is None:
                self._unkeyed += 1
            else:
                self._accepted[key] = self._accepted.get(key, 0) + 1
                self._bodies[key] = body

    def record_refusal(self) -> None:
        """Count one delivery answered with an error."""
        with self._lock:
            self._refused += 1

    # --- answering --------------------------------------------------------------------------

    def deliver(self, key: str | None, body: bytes) -> tuple[int, dict[str, Any], float]:
        """Decide one delivery: (status, JSON answer, Retry-After seconds or 0)."""
        with self._lock:
            self._in_flight += 1
        try:
            return self._decide(key, body)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _decide(self, key: str | None, body: bytes) -> tuple[int, dict[str, Any], float]:
        """Down, slow, failing or accepting, in that order."""
        with self._lock:
            down_for = self._down_until - time.monotonic()
            latency = self._latency
        if down_for > 0:
            self.record_refusal()
            return 503, {"status": "down"}, down_for
        if latency and self._stopping.wait(latency):
            self.record_refusal()
            return 503, {"status": "shutting down"}, 0.0
        with self._lock:
            failed = self._random.random() < self._failure_rate
        if failed:
            self.record_refusal()
            return 500, {"status": "error", "error": "random failure"}, 0.0
        self._record(key, body)
        return 200, {"status": "accepted"}, 0.0

    # --- serving ----------------------------------------------------------------------------

    def _bind(self) -> ThreadingHTTPServer:
        self._stopping.clear()
        try:
            return _PartnerServer(self._address, self)
        except OSError as error:
            host, port = self._address
            raise OSError(
                error.errno, f"the demo partner cannot listen on {host}:{port}: {error.strerror}"
            ) from error

    def stop(self) -> None:
        """Wake slow answers, stop accepting, and wait for every request thread to end."""
        self._stopping.set()
        super().stop()


class _PartnerServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the partner its handlers answer for."""

    daemon_threads = True
    # server_close() joins request threads; every connection closes after one answer.
    block_on_close = True
    request_queue_size = 1024  # a burst of deliveries waits to be accepted, never reset

    def __init__(self, address: tuple[str, int], partner: DemoPartner) -> None:
        super().__init__(address, _PartnerHandler)
        self.partner = partner


class _PartnerHandler(BaseHTTPRequestHandler):
    """One request per connection: deliveries on any path, /_stats and /_settings."""

    protocol_version = "HTTP/1.1"
    server_version = "pingpost-demo-partner"
    timeout = REQUEST_TIMEOUT_SECONDS
    server: _PartnerServer

    def do_GET(self) -> None:
        """Stats, settings, or a delivery."""
        path = self.path.split("?", 1)[0]
        if path == STATS_PATH:
            self._answer(200, self.server.partner.stats())
        elif path == SETTINGS_PATH:
            self._answer(200, self.server.partner.settings())
        else:
            self._deliver()

    def do_POST(self) -> None:
        """New settings, or a delivery."""
        if self.path.split("?", 1)[0] == SETTINGS_PATH:
            self._change_settings()
        else:
            self._deliver()

    def do_PUT(self) -> None:
        """A delivery."""
        self._deliver()

    def _body_problem(self) -> tuple[int, dict[str, Any]] | None:
        """The answer to a body that won't be read (chunked, over the cap); None if it will."""
        if self.headers.get("Transfer-Encoding"):
            return 411, {"status": "error", "error": "send a Content-Length"}
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            return 413, {"status": "error", "error": "body over 1 MiB"}
        return None

    def _read_body(self) -> bytes:
        """The body, once _body_problem found none."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _deliver(self) -> None:
        """Accept, delay, fail or refuse one delivery as the partner's settings say."""
        partner = self.server.partner
        problem = self._body_problem()
        if problem is not None:
            # Counted before answering, so a client reading the stats next sees it.
            partner.record_refusal()
            self._answer(*problem)
            return
        key = self.headers.get(IDEMPOTENCY_HEADER) or None
        status, answer, retry_after = partner.deliver(key, self._read_body())
        headers = [("Retry-After", str(math.ceil(retry_after)))] if retry_after else []
        self._answer(status, answer, headers)

    def _change_settings(self) -> None:
        """Apply a JSON object of settings; answer the settings now in force."""
        problem = self._body_problem()
        if problem is not None:
            self._answer(*problem)
            return
        try:
            settings = json.loads(self._read_body() or b"{}")
            if not isinstance(settings, dict):
                raise ValueError("settings must be a JSON object")
            self._answer(200, self.server.partner.apply_settings(settings))
        except ValueError as error:
            self._answer(400, {"status": "error", "error": str(error)})

    def _answer(
        self, status: int, answer: Mapping[str, Any], headers: list[tuple[str, str]] | None = None
    ) -> None:
        """Write a JSON answer and close: no idle keep-alive thread outlives stop()."""
        body = json.dumps(answer).encode()
        self.close_connection = True
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            for name, value in headers or []:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client timed out on a slow answer; what was accepted stays accepted.
            pass

    def log_message(self, format: str, *args: Any) -> None:
        """Access log to stderr when the partner is verbose."""
        if self.server.partner.verbose:
            sys.stderr.write(f"demo partner: {format % args}\n")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line a request with its idempotency key, not its body (personal data)."""
        headers = getattr(self, "headers", None)
        key = headers.get(IDEMPOTENCY_HEADER, "-") if headers is not None else "-"
        self.log_message('"%s %s" %s key=%s', self.command, self.path, str(code), key)

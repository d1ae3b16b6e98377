"""A demo buyer that bids, on loopback: it answers bid requests with a price and posts with an
accept or a reject, as the JSON buyers of real ping/post specifications do.

Bid: `{"status": "bid", "bid_id": "...", "price": "4.20"}`, or `{"status": "decline", "reason":
"no_bid"}`. Post (the token back as `bid_id`): `{"status": "accepted", "bid_id": "..."}`, or
`{"status": "rejected", "reason": "duplicate_phone"}`. Its settings draw the price from a range,
delay the answers, and decline or reject a share of them; it records every request it got.
`endpoints()` gives the partner's `bid` and `post` settings that read it.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Mapping
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl

from pingpost_local.background import LOOPBACK, Served

MAX_BODY_BYTES: Final = 1024 * 1024
BID_PATH: Final = "/ping"
POST_PATH: Final = "/post"
STATS_PATH: Final = "/_stats"
SETTINGS_PATH: Final = "/_settings"
_SETTINGS: Final = ("low", "high", "latency", "decline_rate", "reject_rate")
# An idle kept-alive connection is closed after this long.
IDLE_SECONDS: Final = 5.0


class DemoBidder(Served):
    """A bidding buyer: prices drawn from [low, high], answers after `latency` seconds; it
    declines `decline_rate` of the bids and rejects `reject_rate` of the posts."""

    def __init__(
        self,
        low: float = 5.0,
        high: float | None = None,
        *,
        latency: float = 0.0,
        decline_rate: float = 0.0,
        reject_rate: float = 0.0,
        seed: int | None = None,
        port: int = 0,
        host: str = LOOPBACK,
    ) -> None:
        super().__init__((host, port), "pingpost-demo-bidder")
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.low, self.high = low, low if high is None else high
        self.latency = latency
        self.decline_rate = decline_rate
        self.reject_rate = reject_rate
        self.asked: list[dict[str, str]] = []  # every bid request's fields
        self.bids: dict[str, Decimal] = {}  # token -> price bid
        self.posted: dict[str, dict[str, str]] = {}  # token -> the post's fields (the last)
        self.posts: list[str] = []  # the token of every post, in order
        self._stopping = threading.Event()

    def configure(self, **settings: float) -> None:
        """Change low, high, latency, decline_rate or reject_rate."""
        for name, value in settings.items():
            if name not in _SETTINGS:
                raise ValueError(f"unknown setting {name}: {', '.join(_SETTINGS)}")
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a number, 0 or more")
            if name.endswith("_rate") and value > 1:
                raise ValueError(f"{name} must be between 0 and 1")
        with self._lock:
            for name, value in settings.items():
                setattr(self, name, float(value))
            self.high = max(self.high, self.low)

    def settings(self) -> dict[str, float]:
        """The settings now."""
        with self._lock:
            return {name: getattr(self, name) for name in _SETTINGS}

    def stats(self) -> dict[str, int]:
        """Bid requests, bids made, posts, posts accepted."""
        with self._lock:
            return {
                "asked": len(self.asked),
                "bids": len(self.bids),
                "posts": len(self.posts),
                "accepted": len(self.posted),
            }

    def endpoints(self, **changes: Any) -> dict[str, Any]:
        """The `bid` and `post` settings of a partner that buys from this bidder."""
        json_answers = {"accepted_values": ["bid"]}
        return {
            "bid": {
                "url": self.url + BID_PATH,
                "answer": {"accepted": "status", "price": "price", "token": "bid_id"}
                | {"reason": "reason"},
                **json_answers,
            }
            | changes.get("bid", {}),
            "post": {
                "url": self.url + POST_PATH,
                "answer": {"accepted": "status", "reason": "reason"},
                "accepted_values": ["accepted"],
                "token_field": "bid_id",
            }
            | changes.get("post", {}),
        }

    # --- answering --------------------------------------------------------------------------

    def _wait(self, latency: float) -> None:
        if latency:
            self._stopping.wait(latency)

    def bid(self, fields: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """Answer one bid request."""
        with self._lock:
            self.asked.append(dict(fields))
            latency = self.latency
            declined = self._random.random() < self.decline_rate
            cents = self._random.randint(round(self.low * 100), round(self.high * 100))
        self._wait(latency)
        if declined:
            return 200, {"status": "decline", "reason": "no_bid", "message": "not today"}
        token = uuid.uuid4().hex
        price = Decimal(cents) / 100
        with self._lock:
            self.bids[token] = price
        return 200, {"status": "bid", "bid_id": token, "price": f"{price:.2f}"}

    def post(self, fields: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """Answer one post."""
        token = fields.get("bid_id", "")
        with self._lock:
            latency = self.latency
            rejected = self._random.random() < self.reject_rate
            self.posts.append(token)
            known = token in self.bids
            if known and not rejected:
                self.posted[token] = dict(fields)
        self._wait(latency)
        if not known:
            return 200, {"status": "rejected", "reason": "unknown bid_id"}
        if rejected:
            return 200, {"status": "rejected", "reason": "duplicate_phone"}
        return 200, {"status": "accepted", "bid_id": token}

    # --- serving ----------------------------------------------------------------------------

    def _bind(self) -> ThreadingHTTPServer:
        self._stopping.clear()
        return _BidderServer(self._address, self)

    def stop(self) -> None:
        """Wake slow answers and stop serving."""
        self._stopping.set()
        super().stop()


class _BidderServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # kept-alive connections end with their idle timeout, not stop()
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], bidder: DemoBidder) -> None:
        super().__init__(address, _BidderHandler)
        self.bidder = bidder


class _BidderHandler(BaseHTTPRequestHandler):
    """Bids on /ping, posts on /post; JSON or form bodies; connections kept alive."""

    protocol_version = "HTTP/1.1"
    server_version = "pingpost-demo-bidder"
    timeout = IDLE_SECONDS
    # Headers and body go in two writes: without this, the body waits for the client's
    # delayed ACK of the headers (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True
    server: _BidderServer

    def do_GET(self) -> None:
        """Stats and settings."""
        path = self.path.split("?", 1)[0]
        bidder = self.server.bidder
        if path == STATS_PATH:
            self._answer(200, bidder.stats())
        elif path == SETTINGS_PATH:
            self._answer(200, bidder.settings())
        else:
            self._answer(404, {"status": "error", "errors": [f"no such path {path}"]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_BODY_BYTES:
            self._answer(413, {"status": "error", "errors": ["body over 1 MiB"]})
            return
        body = self.rfile.read(length) if length else b""
        try:
            if "json" in (self.headers.get("Content-Type") or ""):
                fields = {str(k): str(v) for k, v in json.loads(body or b"{}").items()}
            else:
                fields = dict(parse_qsl(body.decode()))
        except (ValueError, AttributeError):
            self._answer(400, {"status": "error", "errors": ["unreadable body"]})
            return
        path = self.path.split("?", 1)[0]
        bidder = self.server.bidder
        if path == SETTINGS_PATH:
            try:
                bidder.configure(**json.loads(body or b"{}"))
            except (ValueError, TypeError) as error:
                self._answer(400, {"status": "error", "errors": [str(error)]})
                return
            self._answer(200, bidder.settings())
        elif path == BID_PATH:
            self._answer(*bidder.bid(fields))
        elif path == POST_PATH:
            self._answer(*bidder.post(fields))
        else:
            self._answer(404, {"status": "error", "errors": [f"no such path {path}"]})

    def _answer(self, status: int, answer: Mapping[str, Any]) -> None:
        body = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the exchange gave up on a slow answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the exchange's log says what happened."""

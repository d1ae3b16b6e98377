"""Serve a SAM template's HTTP API on 127.0.0.1, with moto standing in for AWS when needed."""

from __future__ import annotations

import functools
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Final

import boto3
from moto.server import ThreadedMotoServer

from pingpost_local import openapi
from pingpost_local.background import LOOPBACK, Served
from pingpost_local.bidder import DemoBidder
from pingpost_local.cors import CorsError, merge_origins, parse_origin
from pingpost_local.embedded_aws import start_aws_endpoint
from pingpost_local.events import EventSources, event_sources
from pingpost_local.form import FORM_PATH, Page
from pingpost_local.functions import LocalFunction
from pingpost_local.gateway import MAX_BODY_BYTES, Gateway, HttpRequest, HttpResponse
from pingpost_local.gateway import message_response as _message_response
from pingpost_local.partner import DemoPartner
from pingpost_local.resources import create_resources
from pingpost_local.template import Route, load_template, parameter_values

# Idle keep-alive connections are dropped after this long so threads don't pile up.
IDLE_TIMEOUT_SECONDS: Final = 60.0
# The local demo delivers over plain http to loopback; everywhere else partners need https.
LOCAL_DELIVERY_HTTP_HOSTS: Final = "127.0.0.1,localhost"
# The template parameter naming the origins browsers may call the API from.
CORS_ORIGINS_PARAMETER: Final = "CorsOrigins"


class _ExchangeHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the gateway its handlers dispatch to."""

    daemon_threads = True
    # stop() must not wait for idle keep-alive connections to end.
    block_on_close = False
    # Connections the kernel holds while every thread is busy (socketserver's 5 reset a burst).
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        gateway: Gateway,
        quiet: bool,
        pages: Mapping[str, Page],
    ) -> None:
        super().__init__(address, _RequestHandler)
        self.gateway = gateway
        self.quiet = quiet
        # Served locally where the template has no route: path -> (content type, body), each
        # made when first asked for.
        url = f"http://{self.server_address[0]!s}:{self.server_address[1]}"
        described = functools.cache(lambda: openapi.pages(gateway.template))
        self.pages: dict[str, Callable[[], tuple[str, bytes]]] = {
            path: functools.partial(lambda p: described()[p], path) for path in openapi.PAGES
        }
        self.pages |= {
            path: functools.cache(functools.partial(make, url)) for path, make in pages.items()
        }


class _RequestHandler(BaseHTTPRequestHandler):
    """Reads one request (Content-Length or chunked), hands it to the gateway, writes the answer."""

    protocol_version = "HTTP/1.1"
    server_version = "pingpost-local"
    timeout = IDLE_TIMEOUT_SECONDS
    server: _ExchangeHTTPServer

    def _dispatch(self) -> None:
        """Serve one request of any method."""
        body = self._read_body()
        if body is None:
            # The body was not read, so the connection can't be reused for another request.
            self.close_connection = True
            response = _message_response(413, "Request Entity Too Large")
            response.headers.append(("connection", "close"))
            self._send(response)
            return
        request = HttpRequest(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
            server_port=self.server.server_address[1],
        )
        self._send(self._page(request) or self.server.gateway.handle(request))

    def _page(self, request: HttpRequest) -> HttpResponse | None:
        """One of the local pages (the API's description, the form), unless a route takes it."""
        path = request.target.split("?", 1)[0]
        # A page of its own for a query (/form?type=20), else the path's.
        make = self.server.pages.get(request.target) or self.server.pages.get(path)
        if request.method not in ("GET", "HEAD") or make is None:
            return None
        if self.server.gateway.match(request.method, path) is not None:
            return None
        content_type, body = make()
        return HttpResponse(200, [("content-type", content_type)], body)

    do_GET = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_DELETE = _dispatch
    do_PATCH = _dispatch
    do_HEAD = _dispatch
    do_OPTIONS = _dispatch

    def _read_body(self) -> bytes | None:
        """The request body, or None when it exceeds the HTTP API limit."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes | None:
        """Decode a chunked body, stopping once it passes the size limit."""
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # Skip trailers up to the blank line that ends the message.
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, response: HttpResponse) -> None:
        """Write status, headers and (except for HEAD) the body, framed by Content-Length."""
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        # 1xx, 204 and 304 answers have no body and must not send Content-Length (RFC 9110).
        bodyless = response.status < 200 or response.status in (204, 304)
        if not bodyless:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and not bodyless:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Access log to stderr like sam local, unless the server is quiet."""
        if not self.server.quiet:
            super().log_message(format, *args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line a request, without the query string: it carries keys and personal data."""
        if isinstance(code, HTTPStatus):
            code = code.value
        path = self.path.split("?", 1)[0]
        self.log_message('"%s %s" %s %s', self.command, path, str(code), str(size))


class LocalExchange(Served):
    """The template's HTTP API on a loopback port, served from a background thread."""

    def __init__(
        self,
        template_path: Path,
        port: int = 0,
        *,
        host: str = LOOPBACK,
        physical: Mapping[str, str] | None = None,
        parameters: Mapping[str, str] | None = None,
        quiet: bool = False,
        serialize_invocations: bool = True,
        own_origin_parameter: str | None = None,
        pages: Mapping[str, Page] | None = None,
    ) -> None:
        # own_origin_parameter: a parameter listing CORS origins that gets this server's own
        # origin (http://127.0.0.1:PORT) once its port is bound, before it serves anything.
        # pages: more local pages (path -> a page made from this server's URL).
        self.gateway = Gateway(
            template_path,
            physical=physical,
            parameters=parameters,
            serialize_invocations=serialize_invocations,
        )
        super().__init__((host, port), "pingpost-local-http")
        self._quiet = quiet
        self._own_origin_parameter = own_origin_parameter
        self._pages = dict(pages or {})

    @property
    def routes(self) -> list[Route]:
        """The routes served."""
        return self.gateway.routes

    def serves(self, path: str) -> bool:
        """Whether one of the extra local pages is at `path`."""
        return path in self._pages

    def page_paths(self) -> list[str]:
        """Where the extra local pages are (a query for a page of its own: /form?type=20)."""
        return sorted(self._pages)

    def _bind(self) -> ThreadingHTTPServer:
        server = _ExchangeHTTPServer(self._address, self.gateway, self._quiet, self._pages)
        name = self._own_origin_parameter
        if name is not None:
            host, port = server.server_address[:2]
            parameters = dict(self.gateway.parameters)
            parameters[name] = merge_origins(parameters.get(name, ""), [f"http://{host!s}:{port}"])
            self.gateway.configure_cors(parameters)
        return server


class _Environment:
    """os.environ changes that can be undone, so serve() leaves the process as it found it."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, name: str, value: str) -> None:
        """Set a variable, remembering its earlier value."""
        self._saved.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def setdefault(self, name: str, value: str) -> None:
        """Set a variable only when it is unset or empty."""
        if not os.environ.get(name):
            self.set(name, value)

    def restore(self) -> None:
        """Put every variable back as it was."""
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


def _banner(
    url: str,
    endpoint: str,
    embedded: bool,
    routes: list[Route],
    events: Sequence[str] = (),
    notes: Sequence[str] = (),
    cors_origins: Sequence[str] | None = None,
) -> str:
    """What serve() prints once listening: URL, AWS endpoint, routes, CORS, events, notes."""
    source = "embedded moto" if embedded else "from AWS_ENDPOINT_URL"
    width = max((len(route.path) for route in routes), default=0)
    lines = [
        f"pingpost local exchange listening on {url}",
        f"AWS endpoint: {endpoint} ({source})",
        "Routes:",
        *(f"  {route.method:<7} {route.path:<{width}}  -> {route.function_id}" for route in routes),
    ]
    if cors_origins is None:
        lines.append("Browser origins (CORS): none, the HttpApi has no CorsConfiguration")
    else:
        lines.append(f"Browser origins (CORS): {', '.join(cors_origins) or 'none'}")
    if events:
        lines += ["Events:", *(f"  {line}" for line in events)]
    lines += list(notes)
    return "\n".join(lines)


def _export_embedded_aws(endpoint: str, environment: _Environment) -> None:
    """Point the SDK at the embedded endpoint; return what the functions need locally too."""
    environment.set("AWS_ENDPOINT_URL", endpoint)
    environment.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # moto accepts any credentials, but the SDK refuses to sign without some.
    environment.setdefault("AWS_ACCESS_KEY_ID", "testing")
    environment.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


def _trusted_hosts() -> dict[str, str]:
    """The partner hosts trusted locally: the caller's DELIVERY_HTTP_HOSTS, else loopback."""
    return {
        "DELIVERY_HTTP_HOSTS": os.environ.get("DELIVERY_HTTP_HOSTS") or LOCAL_DELIVERY_HTTP_HOSTS
    }


@dataclass
class _Running:
    """What serve() has started so far, to stop in the right order however far it got."""

    environment: _Environment = field(default_factory=_Environment)
    moto: ThreadedMotoServer | None = None
    partner: DemoPartner | None = None
    bidders: list[DemoBidder] = field(default_factory=list)
    exchange: LocalExchange | None = None
    sources: EventSources | None = None

    def stop(self) -> None:
        """Pollers and schedulers first, as they call the rest; then put os.environ back."""
        for part in (self.sources, self.exchange, self.partner, *self.bidders, self.moto):
            if part is not None:
                part.stop()
        self.environment.restore()


def _export(
    functions: Iterable[LocalFunction],
    local_environment: Mapping[str, str],
    environment: _Environment,
) -> None:
    """Fill local-only values into the functions' environments, then export them all."""
    for function in functions:
        for name, value in local_environment.items():
            # The template leaves these empty for AWS; the local run fills them in.
            if not function.environment.get(name):
                function.environment[name] = value
        for name, value in function.environment.items():
            environment.set(name, value)


def _notes(sources: EventSources, retry_seconds: float | None, running: _Running) -> list[str]:
    """Banner lines after the events: local retry timing, the demo partner and bidders."""
    notes: list[str] = []
    if sources.pollers and retry_seconds is not None:
        notes.append(
            f"Failed SQS messages come back after {math.ceil(retry_seconds)} s locally "
            "(after the queue's VisibilityTimeout on AWS)"
        )
    if running.partner is not None:
        notes.append(_partner_banner(running.partner))
    for bidder in running.bidders:
        settings = bidder.settings()
        notes.append(
            f"Demo bidder: {bidder.url} (bids {settings['low']:g} to {settings['high']:g},"
            f" declines {settings['decline_rate']:.0%}, rejects {settings['reject_rate']:.0%}"
            f" of posts; GET {bidder.url}/_stats, POST {bidder.url}/_settings)"
        )
    return notes


def _partner_banner(partner: DemoPartner) -> str:
    """The demo partner's line: its URL and how it behaves."""
    settings = partner.settings()
    behaviour = []
    if settings["failure_rate"]:
        behaviour.append(f"fails {settings['failure_rate']:.0%} at random")
    if settings["latency"]:
        behaviour.append(f"answers after {settings['latency']:g} s")
    described = ", ".join(behaviour) or "accepts every delivery"
    return (
        f"Demo partner: {partner.url} ({described}; "
        f"GET {partner.url}/_stats, POST {partner.url}/_settings)"
    )


def _local_parameters(
    template_path: Path, template: Mapping[str, Any], cors_origins: Sequence[str]
) -> tuple[dict[str, str], str | None]:
    """The template's parameter values with cors_origins added to its CorsOrigins, and the
    name of that parameter (None when the template has none: then no origin can be added)."""
    parameters = parameter_values(template)
    origins = [parse_origin(origin) for origin in cors_origins]
    if CORS_ORIGINS_PARAMETER not in (template.get("Parameters") or {}):
        if origins:
            raise CorsError(
                f"{template_path} has no {CORS_ORIGINS_PARAMETER} parameter to add "
                f"{', '.join(origins)} to"
            )
        return parameters, None
    current = parameters.get(CORS_ORIGINS_PARAMETER, "")
    parameters[CORS_ORIGINS_PARAMETER] = merge_origins(current, origins)
    return parameters, CORS_ORIGINS_PARAMETER


def _demo_partner(
    port: int, failure_rate: float, latency: float, environment: _Environment
) -> DemoPartner:
    """Start the demo partner and name its URL in DEMO_PARTNER_URL (the demo seed's)."""
    partner = DemoPartner(port, failure_rate=failure_rate, latency=latency, verbose=True)
    partner.start()
    environment.set("DEMO_PARTNER_URL", partner.url)
    return partner


# The demo bidders: their bids (low, high), the share of bids they decline and of posts they
# reject; each answers after 20 ms, as a buyer nearby would.
DEMO_BIDDERS = ((25.0, 45.0, 0.2, 0.0), (20.0, 40.0, 0.0, 0.3))


def _demo_bidders(environment: _Environment) -> list[DemoBidder]:
    """Start the demo bidders and name their URLs in DEMO_BIDDER_URLS (the demo seed's)."""
    started = []
    for low, high, declines, rejects in DEMO_BIDDERS:
        bidder = DemoBidder(low, high, latency=0.02, decline_rate=declines, reject_rate=rejects)
        bidder.start()
        started.append(bidder)
    environment.set("DEMO_BIDDER_URLS", " ".join(b.url for b in started))
    return started


def _stop_on_signals(stop: threading.Event) -> dict[int, Any]:
    """Set `stop` on Ctrl-C or SIGTERM (only the main thread may handle signals); returns the
    handlers replaced, to put back."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    return {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}


def _ready(
    exchange: LocalExchange,
    endpoint: str,
    embedded: bool,
    sources: EventSources,
    retry_seconds: float | None,
    running: _Running,
) -> str:
    """The banner printed once everything serves."""
    notes = _notes(sources, retry_seconds, running)
    notes.append(f"API description: {exchange.url}/openapi.yaml, {exchange.url}/docs (local only)")
    if exchange.serves(FORM_PATH):
        typed = [p for p in exchange.page_paths() if p.startswith(f"{FORM_PATH}?")]
        others = "".join(f", {exchange.url}{p}" for p in typed)
        notes.append(
            f"Web form: {exchange.url}{FORM_PATH}{others} (local only; pingpost form writes it)"
        )
    notes.append(
        "Hosts trusted over plain http and at private addresses (partners, Redirect_URL): "
        f"{os.environ['DELIVERY_HTTP_HOSTS']} (DELIVERY_HTTP_HOSTS)"
    )
    if embedded:
        # Placeholders, not the environment's credentials: moto takes any.
        notes.append(
            "Operator commands (pingpost lead show ID, ...) from another shell, after: export"
            f" AWS_ENDPOINT_URL={endpoint} AWS_DEFAULT_REGION={os.environ['AWS_DEFAULT_REGION']}"
            " AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing"
            + (f" LEAD_TYPES_DIR={own}" if (own := os.environ.get("LEAD_TYPES_DIR")) else "")
        )
    cors = exchange.gateway.cors
    return _banner(
        exchange.url,
        endpoint,
        embedded,
        exchange.routes,
        sources.describe(),
        notes,
        cors_origins=None if cors is None else cors.origins,
    )


def serve(
    port: int,
    template_path: Path,
    seed: Callable[[], None] | None = None,
    *,
    on_ready: Callable[[str], None] | None = None,
    host: str = LOOPBACK,
    stop_event: threading.Event | None = None,
    retry_seconds: float | None = 5.0,
    schedule_seconds: float | None = 30.0,
    demo_partner_port: int | None = 0,
    demo_partner_failure_rate: float = 0.0,
    demo_partner_latency: float = 0.0,
    cors_origins: Sequence[str] = (),
    pages: Mapping[str, Page] | None = None,
) -> None:
    """Create the template's resources, export its environment, seed, then serve until stopped.

    Stops on Ctrl-C or SIGTERM (main thread only) or when stop_event is set.
    """
    # retry_seconds: when messages a handler failed come back (None: the queue's
    # VisibilityTimeout, as on AWS). schedule_seconds: the interval of every Schedule event
    # (None: their rates; cron schedules then don't run). demo_partner_port: None for none.
    # cors_origins: added to the template's CorsOrigins, with the exchange's own origin.
    # pages: local pages beside the API's (the demo's web form).
    stop = stop_event or threading.Event()
    running = _Running()
    previous_handlers: dict[int, Any] = {}
    try:
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        if not endpoint:
            running.moto, endpoint = start_aws_endpoint()
            _export_embedded_aws(endpoint, running.environment)
        if demo_partner_port is not None:
            # Before seeding: the seed's delivery URLs point at it.
            running.partner = _demo_partner(
                demo_partner_port,
                demo_partner_failure_rate,
                demo_partner_latency,
                running.environment,
            )
            running.bidders = _demo_bidders(running.environment)
        running.exchange, running.sources = _exchange(
            template_path, port, host, cors_origins, retry_seconds, schedule_seconds, running, pages
        )
        if seed is not None:
            seed()
        running.sources.start()

        previous_handlers = _stop_on_signals(stop)
        running.exchange.start()
        embedded = running.moto is not None
        print(
            _ready(
                running.exchange,
                endpoint,
                embedded,
                running.sources,
                retry_seconds,
                running,
            )
        )
        sys.stdout.flush()
        if on_ready is not None:
            on_ready(running.exchange.url)
        # A bounded wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(timeout=0.5):
            pass
        print("pingpost local exchange stopping", file=sys.stderr, flush=True)
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        running.stop()


def _exchange(
    template_path: Path,
    port: int,
    host: str,
    cors_origins: Sequence[str],
    retry_seconds: float | None,
    schedule_seconds: float | None,
    running: _Running,
    pages: Mapping[str, Page] | None = None,
) -> tuple[LocalExchange, EventSources]:
    """Create the template's resources; return its HTTP API and its event sources, not yet
    started, with every function's environment exported."""
    template = load_template(template_path)
    parameters, cors_parameter = _local_parameters(template_path, template, cors_origins)
    physical = create_resources(template, boto3.client("dynamodb"), boto3.client("sqs"), parameters)
    exchange = LocalExchange(
        template_path,
        port,
        host=host,
        physical=physical,
        parameters=parameters,
        own_origin_parameter=cors_parameter,
        pages=pages,
    )
    functions = exchange.gateway.functions
    sources = event_sources(
        template_path,
        template,
        physical,
        parameters,
        functions,
        retry_seconds=retry_seconds,
        schedule_seconds=schedule_seconds,
    )
    # Local partners listen on loopback over plain http, whichever endpoint is used.
    _export(functions.values(), _trusted_hosts(), running.environment)
    return exchange, sources

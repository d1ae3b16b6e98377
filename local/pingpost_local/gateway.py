"""API Gateway HTTP API in-process: HTTP request -> payload 2.0 event -> handler -> HTTP response.

Mirrors what the deployed HttpApi does, so handlers see locally what they will see on AWS.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
import re
import secrets
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, unquote_plus, urlsplit

from pingpost_local.cors import CorsPolicy
from pingpost_local.functions import LocalFunction, local_function
from pingpost_local.template import (
    ACCOUNT_ID,
    DEFAULT_ROUTE,
    Route,
    http_api_cors,
    http_routes,
    load_template,
    parameter_values,
)

# HTTP API refuses request payloads over 10 MB.
MAX_BODY_BYTES: Final = 10 * 1024 * 1024
API_ID: Final = "local"
STAGE: Final = "$default"
# HTTP API hands these to Lambda as UTF-8 text; every other type (form posts included) as base64.
TEXT_MEDIA_TYPES: Final = frozenset(
    {"application/json", "application/xml", "application/javascript"}
)
_MONTHS: Final = "JanFebMarAprMayJunJulAugSepOctNovDec"
# Framing headers belong to this hop; the server computes its own Content-Length.
_HOP_HEADERS: Final = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """An HTTP request as received: method, request-target verbatim, raw header pairs, body."""

    method: str
    target: str
    headers: Sequence[tuple[str, str]]
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"
    server_port: int = 80


@dataclass(slots=True)
class HttpResponse:
    """An HTTP response to write: status, header pairs (repeats allowed), body bytes."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of a header, matched case-insensitively."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


class InvalidLambdaResponse(ValueError):
    """The handler's result is not something API Gateway can turn into a response."""


def message_response(status: int, message: str) -> HttpResponse:
    """API Gateway's own error shape: {"message": "..."} as JSON."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return HttpResponse(status, [("content-type", "application/json")], body)


def is_text_media_type(content_type: str | None) -> bool:
    """Whether HTTP API passes a body of this Content-Type as text rather than base64."""
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type.startswith("text/") or media_type in TEXT_MEDIA_TYPES


def split_target(target: str) -> tuple[str, str]:
    """Split a request-target into raw path and raw query string, neither re-encoded."""
    if target.startswith(("http://", "https://")):
        # Absolute-form targets (sent through proxies) carry scheme and host to drop.
        parts = urlsplit(target)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    path, _, query = target.partition("?")
    return path or "/", query


def query_parameters(raw_query: str) -> dict[str, str]:
    """Decode a query string as HTTP API does: repeated keys comma-joined, in order."""
    parameters: dict[str, str] = {}
    for pair in raw_query.split("&"):
        if not pair:
            continue
        raw_key, _, raw_value = pair.partition("=")
        key, value = unquote_plus(raw_key), unquote_plus(raw_value)
        parameters[key] = f"{parameters[key]},{value}" if key in parameters else value
    return parameters


def _request_id() -> str:
    """An id shaped like API Gateway's (16 base64 characters ending in '=')."""
    return base64.b64encode(secrets.token_bytes(11)).decode("ascii")


def _trace_id(now: datetime) -> str:
    """An X-Ray style trace header, as API Gateway adds one to every request."""
    return f"Root=1-{int(now.timestamp()):08x}-{secrets.token_hex(12)}"


def _clf_time(now: datetime) -> str:
    """Time in the CLF form of requestContext.time, English month whatever the locale."""
    month = _MONTHS[3 * (now.month - 1) : 3 * now.month]
    return f"{now:%d}/{month}/{now:%Y:%H:%M:%S} +0000"


def build_event(
    request: HttpRequest,
    route_key: str,
    *,
    path_parameters: Mapping[str, str] | None = None,
    api_id: str = API_ID,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The payload format 2.0 event API Gateway HTTP API sends to Lambda for this request."""
    now = now or datetime.now(UTC)
    request_id = request_id or _request_id()
    raw_path, raw_query = split_target(request.target)

    grouped: dict[str, list[str]] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        lower = name.lower()
        if lower == "cookie":
            # Format 2.0 moves cookies out of the headers into their own list.
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        else:
            grouped.setdefault(lower, []).append(value)
    headers = {name: ",".join(values) for name, values in grouped.items()}
    forwarded = headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = (
        f"{forwarded}, {request.source_ip}" if forwarded else request.source_ip
    )
    headers["x-forwarded-port"] = str(request.server_port)
    headers["x-forwarded-proto"] = "http"
    headers.setdefault("x-amzn-trace-id", _trace_id(now))

    host = headers.get("host", f"127.0.0.1:{request.server_port}")
    domain_name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    parameters = query_parameters(raw_query)
    if parameters:
        event["queryStringParameters"] = parameters
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": api_id,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": raw_path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": STAGE,
        "time": _clf_time(now),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if request.body:
        text = _as_text(request.body, headers.get("content-type"))
        encoded = text is None
        event["body"] = base64.b64encode(request.body).decode("ascii") if text is None else text
    else:
        encoded = False
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    event["isBase64Encoded"] = encoded
    return event


def _as_text(body: bytes, content_type: str | None) -> str | None:
    """The body as text when HTTP API would send it as text; None means base64."""
    if not is_text_media_type(content_type):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        # Bytes that are not UTF-8 can't travel in a JSON string; base64 keeps them intact.
        return None


def _runtime_json(result: Any) -> Any:
    """Round-trip the result through JSON as the Python runtime does (Decimal becomes a number)."""

    def default(value: Any) -> Any:
        if isinstance(value, decimal.Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    try:
        return json.loads(json.dumps(result, default=default))
    except (TypeError, ValueError) as error:
        raise InvalidLambdaResponse(f"handler result is not JSON: {error}") from error


def to_http_response(result: Any) -> HttpResponse:
    """Turn a handler's return value into HTTP as HTTP API payload 2.0 does (inference included)."""
    payload = _runtime_json(result)
    if not (isinstance(payload, dict) and "statusCode" in payload):
        # No statusCode: 200, application/json, and the result itself is the body.
        text = payload if isinstance(payload, str) else json.dumps(payload)
        return HttpResponse(200, [("content-type", "application/json")], text.encode())

    status = payload["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise InvalidLambdaResponse(f"statusCode {status!r} is not an HTTP status")
    headers: list[tuple[str, str]] = []
    single = payload.get("headers") or {}
    multi = payload.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise InvalidLambdaResponse("headers and multiValueHeaders must be objects")
    for name, value in single.items():
        headers.append((str(name), _header_text(value)))
    for name, values in multi.items():
        if not isinstance(values, list):
            raise InvalidLambdaResponse(f"multiValueHeaders[{name!r}] must be a list")
        headers.extend((str(name), _header_text(value)) for value in values)
    cookies = payload.get("cookies") or []
    if not isinstance(cookies, list):
        raise InvalidLambdaResponse("cookies must be a list")
    headers.extend(("set-cookie", str(cookie)) for cookie in cookies)
    headers = [(name, value) for name, value in headers if name.lower() not in _HOP_HEADERS]

    body_value = payload.get("body")
    if body_value is None:
        body = b""
    elif not isinstance(body_value, str):
        raise InvalidLambdaResponse("body must be a string")
    elif payload.get("isBase64Encoded") is True:
        try:
            body = base64.b64decode(body_value, validate=True)
        except binascii.Error as error:
            raise InvalidLambdaResponse("isBase64Encoded body is not base64") from error
    else:
        body = body_value.encode("utf-8")
    response = HttpResponse(status, headers, body)
    if body and response.header("content-type") is None:
        # A shaped response without Content-Type reaches clients as plain text, not JSON.
        response.headers.append(("content-type", "text/plain; charset=utf-8"))
    return response


def _header_text(value: Any) -> str:
    """Header values may come back as numbers or booleans; they go out as JSON renders them."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


@dataclass(frozen=True, slots=True)
class _CompiledRoute:
    """A route with its path template compiled for matching."""

    route: Route
    pattern: re.Pattern[str]
    rank: tuple[int, int, int, int]


def _compile(route: Route, order: int) -> _CompiledRoute:
    """Regex for a route path; {name} takes one segment and {name+} the rest."""
    if route.path == DEFAULT_ROUTE:
        return _CompiledRoute(route, re.compile(r"(?s).*"), (3, 0, 0, order))
    parts: list[str] = []
    greedy = parameters = 0
    for segment in route.path.split("/"):
        variable = re.fullmatch(r"\{(\w+)(\+?)\}", segment)
        if variable is None:
            parts.append(re.escape(segment))
        elif variable.group(2):
            greedy += 1
            parts.append(f"(?P<{variable.group(1)}>.+)")
        else:
            parameters += 1
            parts.append(f"(?P<{variable.group(1)}>[^/]+)")
    # API Gateway prefers literal paths, then fewer variables, then an exact method over ANY.
    rank = (1 if greedy else 0, parameters, 1 if route.method == "ANY" else 0, order)
    return _CompiledRoute(route, re.compile("/".join(parts)), rank)


class Gateway:
    """The HTTP API of a SAM template: routes requests to its functions as payload 2.0 events.

    With a CorsConfiguration on the HttpApi it does CORS as HTTP API does: it answers preflights
    itself, grants allowed origins on every answer and ignores the functions' CORS headers.
    """

    def __init__(
        self,
        template_path: Path,
        *,
        physical: Mapping[str, str] | None = None,
        parameters: Mapping[str, str] | None = None,
        template: Mapping[str, Any] | None = None,
        serialize_invocations: bool = True,
        api_id: str = API_ID,
    ) -> None:
        self.template_path = template_path
        self.template = dict(template) if template is not None else load_template(template_path)
        self.physical = dict(physical or {})
        self.parameters = (
            dict(parameters) if parameters is not None else parameter_values(self.template)
        )
        self.api_id = api_id
        self.cors: CorsPolicy | None = None
        self.configure_cors()
        self.routes = http_routes(self.template)
        compiled = [_compile(route, order) for order, route in enumerate(self.routes)]
        self._compiled = sorted(compiled, key=lambda item: item.rank)
        self.functions: dict[str, LocalFunction] = {}
        for route in self.routes:
            if route.function_id not in self.functions:
                self.functions[route.function_id] = local_function(
                    template_path,
                    self.template,
                    route.function_id,
                    self.physical,
                    self.parameters,
                    serialize=serialize_invocations,
                )

    def configure_cors(self, parameters: Mapping[str, str] | None = None) -> None:
        """(Re)read the HttpApi's CorsConfiguration, with new parameter values if given.

        Raises CorsError when it allows '*' or names something that is not an origin.
        """
        if parameters is not None:
            self.parameters = dict(parameters)
        configuration = http_api_cors(self.template, self.physical, self.parameters)
        self.cors = None if configuration is None else CorsPolicy.from_configuration(configuration)

    def environment(self) -> dict[str, str]:
        """The union of every function's environment variables."""
        merged: dict[str, str] = {}
        for function in self.functions.values():
            merged.update(function.environment)
        return merged

    def match(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
        """The route serving method and path, with its path parameters; None if none does."""
        path = unquote(raw_path)
        for compiled in self._compiled:
            route = compiled.route
            if route.method not in ("ANY", method.upper()):
                continue
            found = compiled.pattern.fullmatch(path)
            if found is not None:
                return route, found.groupdict()
        return None

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one HTTP request the way the deployed HTTP API would."""
        request_id = _request_id()
        cors = self.cors
        if cors is None:
            response = self._respond(request, request_id)
        else:
            origin = cors.origin(request.headers)
            preflight = cors.is_preflight(request.method, request.headers)
            raw_path, _query = split_target(request.target)
            if preflight and self.match("OPTIONS", raw_path) is None:
                # Answered by API Gateway itself; only a route taking OPTIONS would see it.
                response = HttpResponse(204)
            else:
                response = self._respond(request, request_id)
            response.headers = cors.apply(response.headers, origin, preflight=preflight)
        response.headers.append(("apigw-requestid", request_id))
        return response

    def _respond(self, request: HttpRequest, request_id: str) -> HttpResponse:
        """Route, invoke and convert; every failure becomes API Gateway's own error response."""
        if len(request.body) > MAX_BODY_BYTES:
            return message_response(413, "Request Entity Too Large")
        raw_path, _query = split_target(request.target)
        matched = self.match(request.method, raw_path)
        if matched is None:
            return message_response(404, "Not Found")
        route, path_parameters = matched
        event = build_event(
            request,
            route.route_key,
            path_parameters=path_parameters,
            api_id=self.api_id,
            request_id=request_id,
        )
        function = self.functions[route.function_id]
        try:
            result = function.invoke(event)
            return to_http_response(result)
        except (Exception, SystemExit):
            # Clients get API Gateway's bare 500; the traceback is for the developer only.
            print(
                f"{route.function_id} failed on {route.route_key} (request {request_id}):",
                file=sys.stderr,
            )
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            return message_response(500, "Internal Server Error")

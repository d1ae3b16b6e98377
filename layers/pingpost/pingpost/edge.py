"""Between API Gateway and the exchange: decode the request, answer it, map every error.

Answers are the spec's XML, or JSON with `Format=JSON`; a browser gets the XML's page, or is
sent back to the vendor's site (303) when its form gave a `Redirect_URL` the vendor lists.
"""

from __future__ import annotations

import base64

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from pingpost import exchange
from pingpost.answers import ERROR, Answer
from pingpost.config import settings
from pingpost.decoding import decode, query
from pingpost.errors import InvalidRequest, PingPostError, TooManyRequests, Unavailable
from pingpost.fields import FORMATS, SOURCE_ADDRESS
from pingpost.models import Vendor
from pingpost.observability import logger, metrics
from pingpost.responses import (
    CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    answer_xml,
    error_xml,
    page,
    stylesheet_xsl,
    wants_page,
)
from pingpost.urls import host_of, location
from pingpost.validation import present, redirect_url

_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Vary": "Accept"}
HTML = "text/html; charset=UTF-8"
_JSON = FORMATS[1]


def _wants_stylesheet(app: APIGatewayHttpResolver) -> bool:
    # Remembered once the request is decoded, so that errors found later honour Skip_XSL too.
    return bool(app.context.get("stylesheet", True))


def _wants_json(app: APIGatewayHttpResolver) -> bool:
    return bool(app.context.get("json", False))


def _body(app: APIGatewayHttpResolver) -> bytes:
    event = app.current_event
    if event.body is None:
        return b""
    if event.is_base64_encoded:
        return base64.b64decode(event.body)
    return event.body.encode()


def _respond(
    app: APIGatewayHttpResolver, body: bytes, status: int, headers: dict[str, str] | None = None
) -> Response[str]:
    """An answer document (XML, or JSON when asked for) with `status`."""
    headers = _HEADERS | (headers or {})
    if _wants_json(app):
        return Response(
            status_code=status, content_type=JSON_CONTENT_TYPE, body=body.decode(), headers=headers
        )
    # Browsers are dropping XSLT: one that asks for HTML gets the page the stylesheet makes.
    stylesheet = _wants_stylesheet(app)
    if stylesheet and wants_page(app.current_event.headers.get("accept")):
        html = page(body)
        return Response(status_code=status, content_type=HTML, body=html, headers=headers)
    # Text, not bytes: API Gateway then passes it through without base64.
    return Response(
        status_code=status, content_type=CONTENT_TYPE, body=body.decode(), headers=headers
    )


def _status(app: APIGatewayHttpResolver, status: int) -> int:
    """An error's HTTP status, or 200 for a vendor whose clients take any other for a failure."""
    vendor = app.context.get("vendor")
    return 200 if isinstance(vendor, Vendor) and not vendor.http_errors else status


def _remember_wishes(app: APIGatewayHttpResolver, fields: dict[str, str]) -> None:
    """How the request wants its answer (Format, Skip_XSL), for errors found later too."""
    app.append_context(
        stylesheet=fields.get("Skip_XSL", "").strip() != "1",
        json=fields.get("Format", "").strip().casefold() == _JSON.casefold(),
    )


def _fill_source_address(app: APIGatewayHttpResolver, fields: dict[str, str]) -> None:
    """A browser's request without IP_Address comes from the consumer: their address is it.

    A browser is a request with an Origin header (a form post or a fetch) or one asking for a
    page; publishers' servers send neither, and their address is not the consumer's.
    """
    headers = app.current_event.headers
    from_browser = "origin" in headers or wants_page(headers.get("accept"))
    if from_browser and not fields.get(SOURCE_ADDRESS, "").strip():
        fields[SOURCE_ADDRESS] = app.current_event.request_context.http.source_ip


def _redirect_target(app: APIGatewayHttpResolver, url: str | None, vendor: Vendor) -> str | None:
    """Where a browser posting the vendor's form is sent back to, or None for API clients.

    Refuses (400) a URL that is not public http(s), or whose host the vendor does not list.
    """
    if url is None or not wants_page(app.current_event.headers.get("accept")):
        return None
    target = redirect_url(url)
    if host_of(target) not in vendor.redirect_hosts:
        raise InvalidRequest(
            [
                f"Invalid value for Redirect_URL: {host_of(target)} is not one of this vendor's"
                " redirect hosts"
            ]
        )
    return target


def _redirect(target: str, outcome: dict[str, str]) -> Response[str]:
    """303 See Other to `target` with the outcome (status, lead_id or error) in its query."""
    trusted = settings().trusted_hosts()
    headers = {"Cache-Control": "no-store", "Location": location(target, outcome, trusted)}
    return Response(status_code=303, content_type=HTML, body="", headers=headers)


def answer(app: APIGatewayHttpResolver, path_mode: str | None) -> Response[str]:
    """Decode the current request, hand it to the exchange and encode the answer."""
    event = app.current_event
    # The query string's wishes hold even for a body that cannot be read.
    _remember_wishes(app, query(event.raw_query_string or ""))
    request = decode(
        event.request_context.http.method,
        event.headers.get("content-type"),
        event.raw_query_string or "",
        _body(app),
        settings().max_body_bytes,
    )
    _fill_source_address(app, request.fields)
    sent = present(request.fields)
    _remember_wishes(app, sent)
    vendor = exchange.authenticate(sent.get("Key"))
    app.append_context(vendor=vendor)
    target = _redirect_target(app, sent.get("Redirect_URL"), vendor)
    app.append_context(redirect=target)
    result = exchange.submit(request, path_mode, vendor, event.headers.get("idempotency-key"))
    mode = path_mode or sent.get("Mode", "").casefold()
    metrics.add_metric(name=f"{mode.capitalize()}{result.status}", unit=MetricUnit.Count, value=1)
    told: Answer = result.styled(vendor.response_style)
    if target is not None:
        return _redirect(target, {"status": told.status, "lead_id": str(told.lead_id)})
    body = answer_xml(told, stylesheet=_wants_stylesheet(app), as_json=_wants_json(app))
    return _respond(app, body, 200)


def stylesheet() -> Response[str]:
    """The XSL named by every answer's xml-stylesheet instruction."""
    return Response(
        status_code=200,
        content_type="text/xsl; charset=UTF-8",
        body=stylesheet_xsl().decode(),
        headers={"Cache-Control": "public, max-age=86400"},
    )


def install_error_handlers(app: APIGatewayHttpResolver) -> None:
    """Answer every failure as the spec's XML error with a fitting HTTP status."""

    @app.exception_handler(PingPostError)
    def refused(error: PingPostError) -> Response[str]:
        # The message names fields, never their values, so it is safe to log.
        logger.info("request refused", extra={"status": error.status, "reason": error.message})
        metrics.add_metric(name="Refused", unit=MetricUnit.Count, value=1)
        target = app.context.get("redirect")
        if isinstance(target, str):
            return _redirect(target, {"status": ERROR, "error": error.message})
        body = error_xml(error.message, stylesheet=_wants_stylesheet(app), as_json=_wants_json(app))
        wait = {"Retry-After": "1"} if isinstance(error, TooManyRequests) else None
        return _respond(app, body, _status(app, error.status), wait)

    @app.not_found
    def unrouted(error: Exception) -> Response[str]:
        # API Gateway routes each path to its function; this answers an event sent elsewhere.
        body = error_xml("No such resource", stylesheet=False, as_json=_wants_json(app))
        return _respond(app, body, 404)

    @app.exception_handler([ClientError, BotoCoreError])
    def storage_failed(error: Exception) -> Response[str]:
        logger.exception("storage failed", exc_info=error)
        metrics.add_metric(name="StorageFailed", unit=MetricUnit.Count, value=1)
        unavailable = Unavailable("The exchange could not store the lead; nothing was sold. Retry.")
        return refused(unavailable)

    @app.exception_handler(Exception)
    def crashed(error: Exception) -> Response[str]:
        logger.exception("unexpected failure", exc_info=error)
        metrics.add_metric(name="Crashed", unit=MetricUnit.Count, value=1)
        message = "Internal error; the lead was not accepted. Retry."
        body = error_xml(message, stylesheet=False, as_json=_wants_json(app))
        return _respond(app, body, _status(app, 500))

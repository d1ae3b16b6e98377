"""Between API Gateway and the exchange: decode the request, answer in XML, map every error."""

from __future__ import annotations

import base64

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from pingpost import exchange
from pingpost.config import settings
from pingpost.decoding import decode
from pingpost.errors import PingPostError, Unavailable
from pingpost.observability import logger, metrics
from pingpost.responses import (
    CONTENT_TYPE,
    answer_xml,
    error_xml,
    page,
    stylesheet_xsl,
    wants_page,
)
from pingpost.validation import present

_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Vary": "Accept"}
HTML = "text/html; charset=UTF-8"


def _wants_stylesheet(app: APIGatewayHttpResolver) -> bool:
    # Remembered once the request is decoded, so that errors found later honour Skip_XSL too.
    return bool(app.context.get("stylesheet", True))


def _body(app: APIGatewayHttpResolver) -> bytes:
    event = app.current_event
    if event.body is None:
        return b""
    if event.is_base64_encoded:
        return base64.b64decode(event.body)
    return event.body.encode()


def _xml(app: APIGatewayHttpResolver, body: bytes, status: int) -> Response[str]:
    # Browsers are dropping XSLT: one that asks for HTML gets the page the stylesheet makes.
    stylesheet = _wants_stylesheet(app)
    if stylesheet and wants_page(app.current_event.headers.get("accept")):
        html = page(body)
        return Response(status_code=status, content_type=HTML, body=html, headers=_HEADERS)
    # Text, not bytes: API Gateway then passes it through without base64.
    return Response(
        status_code=status, content_type=CONTENT_TYPE, body=body.decode(), headers=_HEADERS
    )


def answer(app: APIGatewayHttpResolver, path_mode: str | None) -> Response[str]:
    """Decode the current request, hand it to the exchange and encode the answer."""
    event = app.current_event
    route = event.path if path_mode is None else f"/{path_mode}"
    request = decode(
        route,
        event.request_context.http.method,
        event.headers.get("content-type"),
        event.raw_query_string or "",
        _body(app),
        settings().max_body_bytes,
    )
    sent = present(request.fields)
    app.append_context(stylesheet=sent.get("Skip_XSL") != "1")
    result = exchange.submit(request, path_mode)
    mode = path_mode or sent.get("Mode", "").casefold()
    metrics.add_metric(name=f"{mode.capitalize()}{result.status}", unit=MetricUnit.Count, value=1)
    return _xml(app, answer_xml(result, stylesheet=_wants_stylesheet(app)), 200)


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
        body = error_xml(error.message, stylesheet=_wants_stylesheet(app))
        return _xml(app, body, error.status)

    @app.exception_handler([ClientError, BotoCoreError])
    def storage_failed(error: Exception) -> Response[str]:
        logger.exception("storage failed")
        metrics.add_metric(name="StorageFailed", unit=MetricUnit.Count, value=1)
        unavailable = Unavailable("The exchange could not store the lead; nothing was sold. Retry.")
        return refused(unavailable)

    @app.exception_handler(Exception)
    def crashed(error: Exception) -> Response[str]:
        logger.exception("unexpected failure")
        metrics.add_metric(name="Crashed", unit=MetricUnit.Count, value=1)
        body = error_xml("Internal error; the lead was not accepted. Retry.", stylesheet=False)
        return _xml(app, body, 500)

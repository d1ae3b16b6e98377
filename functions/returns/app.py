"""/returns: a partner returns a lead it bought (JSON in and out, its return key as a Bearer)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from botocore.exceptions import BotoCoreError, ClientError

from pingpost import returns
from pingpost.errors import InvalidRequest, PingPostError
from pingpost.observability import logger, metrics

if TYPE_CHECKING:  # (only a type: not loaded at init)
    from aws_lambda_powertools.utilities.typing import LambdaContext

app = APIGatewayHttpResolver()
_JSON = "application/json; charset=UTF-8"


def _answer(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status, _JSON, json.dumps(body), {"Cache-Control": "no-store"})


@app.exception_handler(PingPostError)
def _refused(error: PingPostError) -> Response[str]:
    return _answer(error.status, {"status": "error", "error": error.message})


@app.exception_handler(ClientError)
@app.exception_handler(BotoCoreError)
def _unavailable(error: Exception) -> Response[str]:
    logger.exception("storage unavailable")
    return _answer(503, {"status": "error", "error": "Temporarily unavailable; retry shortly"})


@app.route("/returns", method="POST")
def give_back() -> Response[str]:
    scheme, _, key = (app.current_event.headers.get("authorization") or "").partition(" ")
    partner = returns.partner_of(key.strip() if scheme.lower() == "bearer" else None)
    try:
        sent = json.loads(app.current_event.decoded_body or "{}")
    except ValueError:
        raise InvalidRequest(["The body is not JSON"]) from None
    if not isinstance(sent, dict):
        raise InvalidRequest(["The body is not a JSON object"])
    lead_id, reason = sent.get("lead_id"), sent.get("reason")
    if not isinstance(lead_id, int) or isinstance(lead_id, bool) or lead_id < 1:
        raise InvalidRequest(["lead_id must be a lead's number"])
    done = returns.give_back(partner, lead_id, returns.reason_of(reason))
    return _answer(200, {"status": done, "lead_id": lead_id, "partner_id": partner.id})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

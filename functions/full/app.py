"""/full: the pingPostLead API in full mode (a Mode, if sent, must say full)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from pingpost import edge, selling  # noqa: F401 (every full request sells: loaded at init)
from pingpost.observability import logger, metrics

if TYPE_CHECKING:  # (only a type: not loaded at init)
    from aws_lambda_powertools.utilities.typing import LambdaContext

app = APIGatewayHttpResolver()
edge.install_error_handlers(app)


@app.route("/full", method=["GET", "POST"])
def full() -> Response[str]:
    return edge.answer(app, path_mode="full")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

"""/post: the pingPostLead API in post mode (a Mode, if sent, must say post)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from pingpost import edge, selling  # noqa: F401 (every post sells: loaded at init)
from pingpost.observability import logger, metrics

if TYPE_CHECKING:  # (only a type: not loaded at init)
    from aws_lambda_powertools.utilities.typing import LambdaContext

app = APIGatewayHttpResolver()
edge.install_error_handlers(app)


@app.route("/post", method=["GET", "POST"])
def post() -> Response[str]:
    return edge.answer(app, path_mode="post")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

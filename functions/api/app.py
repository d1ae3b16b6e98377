"""/api.php, /apiXML.php and the hosted platform's other doors to the same API, by Mode.

Every door reads any body by its content (XML, JSON or form fields): publishers mislabel them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from pingpost import edge, selling  # noqa: F401 (its posts and full requests sell: loaded at init)
from pingpost.observability import logger, metrics

if TYPE_CHECKING:  # (only a type: not loaded at init)
    from aws_lambda_powertools.utilities.typing import LambdaContext

app = APIGatewayHttpResolver()
edge.install_error_handlers(app)


@app.route("/api.php", method=["GET", "POST"])
@app.route("/new_api/api.php", method=["GET", "POST"])
def api() -> Response[str]:
    return edge.answer(app, path_mode=None)


@app.post("/apiXML.php")
@app.post("/new_api/apiXML.php")
@app.post("/XMLapi.php")
@app.post("/apiJSON.php")
@app.post("/new_api/apiJSON.php")
def api_document() -> Response[str]:
    return edge.answer(app, path_mode=None)


@app.get("/response.xsl")
def stylesheet() -> Response[str]:
    return edge.stylesheet()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

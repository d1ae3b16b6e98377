"""Figures: adds the day figures each write of a lead carried to the day items `pingpost
report` reads, from the leads table's stream (pingpost.store.counting)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from pingpost.observability import logger, metrics
from pingpost.store import counting, figures

if TYPE_CHECKING:  # (only a type: not loaded at init)
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    records = event.get("Records", [])
    counted = counting.count(records)
    logger.debug("day figures counted", extra={"records": len(records), "writes": counted.writes})
    for key, lost in counted.dropped.items():
        # A day item at DynamoDB's 400 KB: these figures are not in the report (its alarm);
        # logged by the names the item keeps them under, for an operator to add them by hand.
        dropped = {"key": key, "figures": figures.added(lost)}
        logger.error("day item full: figures not counted", extra=dropped)
        metrics.add_metric(name="FiguresDropped", unit=MetricUnit.Count, value=1)
    return {"records": len(records), "counted": counted.writes}

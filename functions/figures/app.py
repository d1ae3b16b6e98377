"""Figures: adds the day figures each write of a lead carried to the day items `pingpost
report` reads, from the leads table's stream (pingpost.store.counting)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from pingpost.observability import logger, metrics
from pingpost.store import counting


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    records = event.get("Records", [])
    counted = counting.count(records)
    logger.debug("day figures counted", extra={"records": len(records), "writes": counted})
    return {"records": len(records), "counted": counted}

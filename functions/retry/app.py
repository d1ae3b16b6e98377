"""Retry: on a schedule, redrive dead-lettered deliveries with backoff and park the hopeless."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pingpost import redrive
from pingpost.observability import logger, metrics

if TYPE_CHECKING:  # (only a type: not loaded at init)
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Leave time for the last batch before the function's own timeout.
    budget = max(1.0, context.get_remaining_time_in_millis() / 1000 - 15)
    return redrive.run(budget).__dict__

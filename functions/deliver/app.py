"""Deliver: each SQS message is one sale to deliver to its partner; failures retry alone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pingpost.delivery import deliver
from pingpost.observability import logger, metrics
from pingpost.store.queues import REDRIVES, Delivery

if TYPE_CHECKING:  # (only a type: not loaded at init)
    from aws_lambda_powertools.utilities.typing import LambdaContext

# A batch whose every delivery failed is reported like any other, item by item: partners being
# down is routine, not an error of this function (which would also fire its errors alarm).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> str:
    attribute = record.message_attributes[REDRIVES]
    redrives = attribute.string_value if attribute is not None else None
    return deliver(Delivery.parse(record.body, redrives))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

"""SQS event sources in-process: what Lambda's pollers do on AWS (`sam local` has none).

A poller receives batches from the queue, hands them to the function as Lambda's SQS event,
deletes what the function handled and leaves the rest to come back (partial batch failures).
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import boto3

from pingpost_local.background import Loop, report, report_exception
from pingpost_local.functions import LocalFunction, enabled, event_settings, function_events
from pingpost_local.template import parameter_values, region, resolve, to_text

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueOutputTypeDef, MessageTypeDef

DEFAULT_BATCH_SIZE: Final = 10
# One ReceiveMessage call returns at most ten messages.
RECEIVE_LIMIT: Final = 10
# SQS refuses a visibility timeout over 12 hours.
MAX_VISIBILITY_SECONDS: Final = 43200
REPORT_BATCH_ITEM_FAILURES: Final = "ReportBatchItemFailures"
# The event properties the local runner acts on; the rest (roles, filters, DLQs) only matter on AWS.
SQS_SETTINGS: Final = (
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "FunctionResponseTypes",
    "Enabled",
)
# A failing AWS call (the endpoint restarting) is retried after this pause, not in a tight loop.
_ERROR_PAUSE_SECONDS: Final = 1.0


@dataclass(frozen=True, slots=True)
class SqsSource:
    """A function's SQS event: which queue, how many messages a batch, partial failures or not."""

    function_id: str
    event_name: str
    # The queue's logical id when the template names one, else None and queue_arn is literal.
    queue_id: str | None
    queue_arn: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    batching_window_seconds: float = 0.0
    function_response_types: tuple[str, ...] = ()
    enabled: bool = True

    @property
    def partial_failures(self) -> bool:
        """Whether the handler reports failed messages itself (ReportBatchItemFailures)."""
        return REPORT_BATCH_ITEM_FAILURES in self.function_response_types

    @property
    def queue_label(self) -> str:
        """The queue as a person knows it: logical id, else the name in its ARN."""
        return self.queue_id or str(self.queue_arn).rsplit(":", 1)[-1]

    def describe(self) -> str:
        """One line for the banner, e.g. "SQS DeliveryQueue -> DeliverFunction (batch 10, ...)"."""
        details = [f"batch {self.batch_size}"]
        if self.batching_window_seconds:
            details.append(f"window {self.batching_window_seconds:g} s")
        if self.partial_failures:
            details.append("partial failures")
        if not self.enabled:
            details.append("disabled")
        return f"SQS {self.queue_label} -> {self.function_id} ({', '.join(details)})"


def _queue_reference(
    value: Any, template: Mapping[str, Any], parameters: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """(logical id, None) for !GetAtt Q.Arn or !Ref Q; (None, ARN) for anything resolving to one."""
    resources: Mapping[str, Any] = template.get("Resources") or {}
    if isinstance(value, Mapping) and len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Fn::GetAtt":
            logical_id = (
                argument.partition(".")[0] if isinstance(argument, str) else str(argument[0])
            )
            return logical_id, None
        if key == "Ref" and argument in resources:
            return str(argument), None
    arn = to_text(resolve(value, {}, parameters, template=template))
    if not arn.startswith("arn:"):
        raise ValueError(f"SQS event Queue {value!r} is not a queue ARN")
    return None, arn


def sqs_sources(
    template: Mapping[str, Any], parameters: Mapping[str, str] | None = None
) -> list[SqsSource]:
    """Every function event of Type SQS, in template order."""
    values = parameter_values(template) if parameters is None else parameters
    sources: list[SqsSource] = []
    for function_id, event_name, _kind, raw in function_events(template, ("SQS",)):
        if "Queue" not in raw:
            raise ValueError(f"{function_id}.{event_name}: an SQS event needs a Queue")
        queue_id, queue_arn = _queue_reference(raw["Queue"], template, values)
        props = event_settings(raw, SQS_SETTINGS, template, values)
        window = float(props.get("MaximumBatchingWindowInSeconds", 0))
        sources.append(
            SqsSource(
                function_id=function_id,
                event_name=event_name,
                queue_id=queue_id,
                queue_arn=queue_arn,
                batch_size=int(props.get("BatchSize", DEFAULT_BATCH_SIZE)),
                batching_window_seconds=window,
                function_response_types=tuple(
                    str(kind) for kind in props.get("FunctionResponseTypes") or ()
                ),
                enabled=enabled(props.get("Enabled")),
            )
        )
    return sources


# --- SQS ---------------------------------------------------------------------------------------


def _lambda_attribute(value: MessageAttributeValueOutputTypeDef) -> dict[str, Any]:
    """A message attribute as Lambda shows it: camelCase keys, binary values in base64."""
    shaped: dict[str, Any] = {}
    if "StringValue" in value:
        shaped["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        shaped["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    shaped["stringListValues"] = list(value.get("StringListValues") or [])
    shaped["binaryListValues"] = [
        base64.b64encode(item).decode("ascii") for item in value.get("BinaryListValues") or []
    ]
    shaped["dataType"] = value["DataType"]
    return shaped


def sqs_record(message: MessageTypeDef, queue_arn: str) -> dict[str, Any]:
    """One Records entry of the event Lambda's SQS poller sends, from a ReceiveMessage message."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _lambda_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    arn_region = queue_arn.split(":")[3] if queue_arn.count(":") >= 5 else ""
    record["eventSource"] = "aws:sqs"
    record["eventSourceARN"] = queue_arn
    record["awsRegion"] = arn_region or region()
    return record


def sqs_event(messages: Sequence[MessageTypeDef], queue_arn: str) -> dict[str, Any]:
    """The whole event: {"Records": [...]} in the order the messages were received."""
    return {"Records": [sqs_record(message, queue_arn) for message in messages]}


def messages_to_keep(
    result: Any, message_ids: Sequence[str], *, partial_failures: bool
) -> set[str]:
    """Ids of the messages a handler's result leaves in the queue, as Lambda reads that result.

    A null or empty response is success; a malformed batchItemFailures fails the whole batch.
    """
    # Without ReportBatchItemFailures Lambda ignores what the handler returns.
    if not partial_failures or result is None:
        return set()
    everything = set(message_ids)
    if not isinstance(result, Mapping):
        return everything
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return everything
    keep: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(identifier, str) or identifier not in everything:
            # An empty, null or unknown itemIdentifier makes Lambda retry the whole batch.
            return everything
        keep.add(identifier)
    return keep


def _malformed(result: Any, keep: set[str], message_ids: Sequence[str]) -> bool:
    """Whether a response kept the whole batch without listing each of its messages."""
    failures = result.get("batchItemFailures") if isinstance(result, Mapping) else None
    listed = len(failures) if isinstance(failures, list) else 0
    return result is not None and keep == set(message_ids) and listed < len(message_ids)


@dataclass(slots=True)
class PollerCounts:
    """What a poller has done so far, for a person or a test to look at."""

    batches: int = 0
    deleted: int = 0
    left: int = 0
    errors: int = 0


class QueuePoller(Loop):
    """Lambda's SQS poller for one event source: receive a batch, invoke, delete what succeeded.

    What is left comes back after the queue's VisibilityTimeout, or retry_seconds when given.
    """

    def __init__(
        self,
        source: SqsSource,
        function: LocalFunction,
        queue_url: str,
        queue_arn: str | None = None,
        *,
        retry_seconds: float | None = None,
        wait_seconds: int = 1,
        sqs: SQSClient | None = None,
        quiet: bool = False,
    ) -> None:
        if retry_seconds is not None and not 0 <= retry_seconds <= MAX_VISIBILITY_SECONDS:
            raise ValueError(f"retry_seconds must be 0..{MAX_VISIBILITY_SECONDS}")
        if not 1 <= source.batch_size <= 10000:
            raise ValueError(f"{source.function_id}: BatchSize must be 1..10000")
        self.source = source
        self.function = function
        self.queue_url = queue_url
        self.retry_seconds = retry_seconds
        self.wait_seconds = wait_seconds
        self.quiet = quiet
        self.counts = PollerCounts()
        # Created here, on the caller's thread: boto3's default session is not thread-safe.
        self._sqs: SQSClient = sqs or boto3.session.Session().client("sqs")
        if queue_arn is None:
            found = self._sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
            queue_arn = found["Attributes"]["QueueArn"]
        self.queue_arn = queue_arn
        super().__init__(f"pingpost-sqs-{source.function_id}-{source.event_name}")

    @classmethod
    def for_source(
        cls,
        source: SqsSource,
        function: LocalFunction,
        physical: Mapping[str, str],
        *,
        retry_seconds: float | None = None,
        wait_seconds: int = 1,
        sqs: SQSClient | None = None,
        quiet: bool = False,
    ) -> QueuePoller:
        """A poller for a source whose queue create_resources made (or that its ARN names)."""
        client: SQSClient = sqs or boto3.session.Session().client("sqs")
        if source.queue_id is not None:
            if source.queue_id not in physical:
                raise KeyError(f"{source.function_id}: queue {source.queue_id} was not created")
            url = physical[source.queue_id]
            arn = physical.get(f"{source.queue_id}.Arn")
        else:
            url = client.get_queue_url(QueueName=source.queue_label)["QueueUrl"]
            arn = source.queue_arn
        return cls(
            source,
            function,
            url,
            arn,
            retry_seconds=retry_seconds,
            wait_seconds=wait_seconds,
            sqs=client,
            quiet=quiet,
        )

    def _run(self) -> None:
        """Receive, invoke, settle, until stopped; AWS errors are reported and retried."""
        while not self._stop.is_set():
            try:
                messages = self._receive_batch()
                if messages:
                    self.process(messages)
            except Exception:
                self.counts.errors += 1
                report_exception(f"SQS {self.source.queue_label} poller failed:")
                self._stop.wait(_ERROR_PAUSE_SECONDS)

    def _receive(self, count: int, wait_seconds: int) -> list[MessageTypeDef]:
        """One ReceiveMessage call with every attribute Lambda puts in the event."""
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages") or [])

    def _receive_batch(self) -> list[MessageTypeDef]:
        """Up to BatchSize messages, gathering for up to MaximumBatchingWindowInSeconds."""
        batch_size = self.source.batch_size
        messages = self._receive(min(RECEIVE_LIMIT, batch_size), self.wait_seconds)
        window = self.source.batching_window_seconds
        if not messages or window <= 0:
            return messages
        deadline = time.monotonic() + window
        while len(messages) < batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait = min(self.wait_seconds, max(1, math.ceil(remaining)))
            count = min(RECEIVE_LIMIT, batch_size - len(messages))
            messages.extend(self._receive(count, wait))
        return messages

    def process(self, messages: Sequence[MessageTypeDef]) -> set[str]:
        """Invoke the function with one batch, delete what succeeded; return the ids left."""
        ids = [message["MessageId"] for message in messages]
        self.counts.batches += 1
        try:
            result = self.function.invoke(sqs_event(messages, self.queue_arn))
        except (Exception, SystemExit):
            report_exception(
                f"{self.source.function_id} failed on {len(messages)} message(s) "
                f"from {self.source.queue_label}; the whole batch stays in the queue:"
            )
            keep = set(ids)
        else:
            keep = messages_to_keep(result, ids, partial_failures=self.source.partial_failures)
            if self.source.partial_failures and _malformed(result, keep, ids):
                report(
                    f"{self.source.function_id} returned {result!r}, which Lambda does not read "
                    "as batchItemFailures; the whole batch stays in the queue"
                )
        done = [message for message in messages if message["MessageId"] not in keep]
        left = [message for message in messages if message["MessageId"] in keep]
        self._delete(done)
        if left and self.retry_seconds is not None:
            # Retries end in the dead-letter queue without the poller: SQS (and moto) moves a
            # message there on the receive after its maxReceiveCount-th.
            self._make_visible(left, self.retry_seconds)
        self.counts.deleted += len(done)
        self.counts.left += len(left)
        if not self.quiet:
            when = (
                "after the queue's VisibilityTimeout"
                if self.retry_seconds is None
                else f"in {math.ceil(self.retry_seconds)} s"
            )
            retry = f", {len(left)} back {when}" if left else ""
            report(
                f"SQS {self.source.queue_label} -> {self.source.function_id}: "
                f"{len(messages)} message(s), {len(done)} done{retry}"
            )
        return keep

    def _delete(self, messages: Sequence[MessageTypeDef]) -> None:
        """Delete in batches of ten; a refused entry is reported (it will simply come back)."""
        for start in range(0, len(messages), RECEIVE_LIMIT):
            chunk = messages[start : start + RECEIVE_LIMIT]
            response = self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(chunk)
                ],
            )
            for failed in response.get("Failed") or []:
                report(f"SQS {self.source.queue_label}: delete refused: {failed}")

    def _make_visible(self, messages: Sequence[MessageTypeDef], seconds: float) -> None:
        """Shorten the visibility of messages left behind so a retry comes within seconds."""
        # ChangeMessageVisibility takes whole seconds only.
        timeout = min(MAX_VISIBILITY_SECONDS, math.ceil(seconds))
        for start in range(0, len(messages), RECEIVE_LIMIT):
            chunk = messages[start : start + RECEIVE_LIMIT]
            response = self._sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(index),
                        "ReceiptHandle": message["ReceiptHandle"],
                        "VisibilityTimeout": timeout,
                    }
                    for index, message in enumerate(chunk)
                ],
            )
            for failed in response.get("Failed") or []:
                report(f"SQS {self.source.queue_label}: visibility change refused: {failed}")


# --- Schedules ---------------------------------------------------------------------------------

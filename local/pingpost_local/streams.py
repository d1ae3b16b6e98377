"""DynamoDB stream event sources in-process: what Lambda's stream pollers do on AWS.

A poller reads each shard of the table's stream in order, hands batches to the function as
Lambda's DynamoDB event, and moves past a batch only when the function returned: a batch that
failed comes again from its first record (as on AWS without bisecting or partial responses).
`drain` reads every record written so far, for a caller that wants the function's work done
before it goes on (a test reading day figures).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import boto3

from pingpost_local.background import Loop, report_exception
from pingpost_local.functions import LocalFunction, event_settings, function_events
from pingpost_local.template import parameter_values, region

DEFAULT_BATCH_SIZE: Final = 100
STREAM_SETTINGS: Final = ("BatchSize", "MaximumBatchingWindowInSeconds", "Enabled")
_POLL_SECONDS: Final = 0.5


@dataclass(frozen=True, slots=True)
class StreamSource:
    """A function's DynamoDB event: which table's stream, how many records a batch."""

    function_id: str
    event_name: str
    table_id: str  # the table's logical id (Stream: !GetAtt Table.StreamArn)
    batch_size: int = DEFAULT_BATCH_SIZE
    batching_window_seconds: float = 0.0
    enabled: bool = True

    def describe(self) -> str:
        """One line for the banner."""
        window = f", window {self.batching_window_seconds:g} s" * bool(self.batching_window_seconds)
        return (
            f"DynamoDB stream {self.table_id} -> {self.function_id}"
            f" (batch {self.batch_size}{window})"
        )


def stream_sources(
    template: Mapping[str, Any], parameters: Mapping[str, str] | None = None
) -> list[StreamSource]:
    """Every function event of Type DynamoDB, in template order."""
    values = parameter_values(template) if parameters is None else parameters
    sources = []
    for function_id, event_name, _kind, raw in function_events(template, ("DynamoDB",)):
        stream = raw.get("Stream")
        argument = stream.get("Fn::GetAtt") if isinstance(stream, Mapping) else None
        if argument is None:
            raise ValueError(f"{function_id}.{event_name}: Stream must be !GetAtt Table.StreamArn")
        table_id = argument.partition(".")[0] if isinstance(argument, str) else str(argument[0])
        props = event_settings(raw, STREAM_SETTINGS, template, values)
        sources.append(
            StreamSource(
                function_id=function_id,
                event_name=event_name,
                table_id=table_id,
                batch_size=int(props.get("BatchSize", DEFAULT_BATCH_SIZE)),
                batching_window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                enabled=props.get("Enabled", True) is not False,
            )
        )
    return sources


def stream_record(record: Mapping[str, Any], stream_arn: str, where: str) -> dict[str, Any]:
    """A record of GetRecords as Lambda hands it to the function."""
    change = dict(record["dynamodb"])
    at = change.get("ApproximateCreationDateTime")
    if isinstance(at, datetime):
        change["ApproximateCreationDateTime"] = int(at.timestamp())
    return {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": where,
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    }


@dataclass
class StreamPoller(Loop):
    """Reads a table's stream and invokes the function with each batch, in order."""

    source: StreamSource
    function: LocalFunction
    stream_arn: str
    quiet: bool = False
    # Per shard: the sequence number of the last record the function took.
    _done: dict[str, str] = field(default_factory=dict)
    batches: int = 0  # the batches handed to the function
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        Loop.__init__(self, f"stream {self.source.table_id} -> {self.source.function_id}")
        self._client = boto3.client("dynamodbstreams")
        self._where = region()

    @classmethod
    def for_source(
        cls, source: StreamSource, function: LocalFunction, physical: Mapping[str, str], **kw: Any
    ) -> StreamPoller:
        arn = physical.get(f"{source.table_id}.StreamArn")
        if arn is None:
            raise ValueError(f"{source.table_id} has no stream (StreamSpecification)")
        return cls(source, function, arn, **kw)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain()
            except Exception:  # the function failed: its batch comes again
                if not self.quiet:
                    report_exception(f"{self.source.function_id} failed on its stream batch")
            self._stop.wait(max(self.source.batching_window_seconds, _POLL_SECONDS))

    def drain(self) -> int:
        """Hand the function every record written so far, batch by batch, in order; the
        number of records. A batch the function fails on raises, and comes again next time."""
        with self._lock:
            handled = 0
            shards = self._client.describe_stream(StreamArn=self.stream_arn)
            for shard in shards["StreamDescription"].get("Shards", []):
                handled += self._drain_shard(shard["ShardId"])
            return handled

    def _drain_shard(self, shard_id: str) -> int:
        handled = 0
        while True:
            batch = self._batch(shard_id)
            if not batch:
                return handled
            records = [stream_record(r, self.stream_arn, self._where) for r in batch]
            self.function.invoke({"Records": records})
            self.batches += 1
            self._done[shard_id] = batch[-1]["dynamodb"]["SequenceNumber"]
            handled += len(batch)

    def _batch(self, shard_id: str) -> Sequence[Any]:
        done = self._done.get(shard_id)
        where: Any = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": done}
            if done
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = self._client.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard_id, **where
        )["ShardIterator"]
        found = self._client.get_records(ShardIterator=iterator, Limit=self.source.batch_size)
        records: Sequence[Any] = found.get("Records", [])
        return records

"""Every event source a template wires to its functions (SQS queues, DynamoDB streams,
schedules), run in-process: the pollers and schedulers of `pingpost serve`, started and stopped
together."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pingpost_local.functions import LocalFunction, local_function
from pingpost_local.schedules import Scheduler, schedules
from pingpost_local.sqs import QueuePoller, sqs_sources
from pingpost_local.streams import StreamPoller, stream_sources


@dataclass(slots=True)
class EventSources:
    """The pollers and schedulers of a template, started and stopped together."""

    pollers: list[QueuePoller] = field(default_factory=list)
    streams: list[StreamPoller] = field(default_factory=list)
    schedulers: list[Scheduler] = field(default_factory=list)
    # Sources the local runner does not run (disabled, cron without an interval), with why.
    skipped: list[str] = field(default_factory=list)

    def start(self) -> None:
        """Start every poller and scheduler."""
        for poller in self.pollers:
            poller.start()
        for stream in self.streams:
            stream.start()
        for scheduler in self.schedulers:
            scheduler.start()

    def stop(self) -> None:
        """Ask every thread to stop at once, then wait for each, so shutdown takes one wait."""
        for poller in self.pollers:
            poller.request_stop()
        for stream in self.streams:
            stream.request_stop()
        for scheduler in self.schedulers:
            scheduler.request_stop()
        for poller in self.pollers:
            poller.stop()
        for stream in self.streams:
            stream.stop()
        for scheduler in self.schedulers:
            scheduler.stop()

    def describe(self) -> list[str]:
        """Banner lines: one per running source, then the skipped ones."""
        return [
            *(poller.source.describe() for poller in self.pollers),
            *(stream.source.describe() for stream in self.streams),
            *(scheduler.describe() for scheduler in self.schedulers),
            *self.skipped,
        ]


def event_sources(
    template_path: Path,
    template: Mapping[str, Any],
    physical: Mapping[str, str],
    parameters: Mapping[str, str],
    functions: MutableMapping[str, LocalFunction],
    *,
    retry_seconds: float | None = None,
    schedule_seconds: float | None = None,
    quiet: bool = False,
) -> EventSources:
    """Pollers and schedulers (not started) for the template's SQS, DynamoDB and Schedule
    events.

    Reuses the LocalFunctions in functions and adds the missing ones; see serve() for the options.
    """

    def function(function_id: str) -> LocalFunction:
        if function_id not in functions:
            functions[function_id] = local_function(
                template_path, template, function_id, physical, parameters
            )
        return functions[function_id]

    sources = EventSources()
    for sqs in sqs_sources(template, parameters):
        if not sqs.enabled:
            sources.skipped.append(f"{sqs.describe()}: not polled")
            continue
        sources.pollers.append(
            QueuePoller.for_source(
                sqs, function(sqs.function_id), physical, retry_seconds=retry_seconds, quiet=quiet
            )
        )
    for stream in stream_sources(template, parameters):
        if not stream.enabled:
            sources.skipped.append(f"{stream.describe()}: not polled")
            continue
        sources.streams.append(
            StreamPoller.for_source(stream, function(stream.function_id), physical, quiet=quiet)
        )
    for schedule in schedules(template, parameters):
        label = f"{schedule.expression} -> {schedule.function_id}"
        if not schedule.enabled:
            sources.skipped.append(f"{label}: disabled, not run")
            continue
        if schedule_seconds is None and schedule.interval_seconds is None:
            sources.skipped.append(f"{label}: not run locally (give an interval to run it)")
            continue
        sources.schedulers.append(
            Scheduler(schedule, function(schedule.function_id), schedule_seconds, quiet=quiet)
        )
    return sources

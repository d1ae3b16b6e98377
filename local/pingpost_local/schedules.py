"""Schedule event sources in-process: what EventBridge does on AWS (`sam local` has none).

A scheduler invokes its function with the scheduled event every interval (a rate, or the
interval the local runner is given).
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from pingpost_local.background import Loop, report, report_exception
from pingpost_local.functions import LocalFunction, enabled, event_settings, function_events
from pingpost_local.template import ACCOUNT_ID, STACK_NAME, parameter_values, region, to_text

SCHEDULE_SETTINGS: Final = (
    "Schedule",
    "ScheduleExpression",
    "Enabled",
    "State",
    "Input",
    "Name",
    "GroupName",
)
_RATE: Final = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_UNIT_SECONDS: Final = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float | None:
    """Seconds between runs of rate(N unit); None for cron(...) and at(...), which have none."""
    text = expression.strip()
    if text.startswith(("cron(", "at(")):
        return None
    found = _RATE.fullmatch(text)
    if found is None or int(found.group(1)) < 1:
        raise ValueError(f"{expression!r} is not rate(N minute|minutes|hour|hours|day|days)")
    return float(int(found.group(1)) * _UNIT_SECONDS[found.group(2).removesuffix("s")])


@dataclass(frozen=True, slots=True)
class ScheduleSource:
    """A function's Schedule or ScheduleV2 event: its expression and the rule that fires it."""

    function_id: str
    event_name: str
    expression: str
    kind: str = "Schedule"
    enabled: bool = True
    # A JSON text that replaces the scheduled event, as the rule target's Input does.
    input: str | None = None
    name: str | None = None
    group_name: str | None = None

    @property
    def interval_seconds(self) -> float | None:
        """The rate's interval; None for cron and at expressions."""
        return rate_seconds(self.expression)

    @property
    def rule_arn(self) -> str:
        """The ARN of the EventBridge rule (or Scheduler schedule) SAM would create."""
        name = self.name or f"{STACK_NAME}-{self.function_id}{self.event_name}"
        if self.kind == "ScheduleV2":
            group = self.group_name or "default"
            return f"arn:aws:scheduler:{region()}:{ACCOUNT_ID}:schedule/{group}/{name}"
        return f"arn:aws:events:{region()}:{ACCOUNT_ID}:rule/{name}"


def schedules(
    template: Mapping[str, Any], parameters: Mapping[str, str] | None = None
) -> list[ScheduleSource]:
    """Every function event of Type Schedule or ScheduleV2, in template order."""
    values = parameter_values(template) if parameters is None else parameters
    found: list[ScheduleSource] = []
    kinds = ("Schedule", "ScheduleV2")
    for function_id, event_name, kind, raw in function_events(template, kinds):
        props = event_settings(raw, SCHEDULE_SETTINGS, template, values)
        expression = props.get("Schedule") or props.get("ScheduleExpression")
        if not isinstance(expression, str):
            raise ValueError(f"{function_id}.{event_name}: a schedule needs its expression")
        rate_seconds(expression)  # refuse a malformed rate now rather than when it would fire
        state = str(props.get("State", "ENABLED")).upper()
        source_input = props.get("Input")
        found.append(
            ScheduleSource(
                function_id=function_id,
                event_name=event_name,
                expression=expression,
                kind=kind,
                enabled=enabled(props.get("Enabled")) and state != "DISABLED",
                input=None if source_input is None else to_text(source_input),
                name=str(props["Name"]) if props.get("Name") else None,
                group_name=str(props["GroupName"]) if props.get("GroupName") else None,
            )
        )
    return found


def scheduled_event(source: ScheduleSource, now: datetime | None = None) -> Any:
    """The event EventBridge sends a rule's Lambda target (or the rule's Input when it has one)."""
    if source.input is not None:
        return json.loads(source.input)
    moment = now or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region(),
        "resources": [source.rule_arn],
        "detail": {},
    }


class Scheduler(Loop):
    """Invoke a function every interval seconds with the scheduled event, until stop().

    The interval defaults to the rate's; cron and at expressions need one from the caller.
    """

    # Runs never overlap (EventBridge would start another): a run longer than the interval
    # skips the ticks it overran.

    def __init__(
        self,
        source: ScheduleSource,
        function: LocalFunction,
        interval: float | None = None,
        *,
        quiet: bool = False,
    ) -> None:
        chosen = interval if interval is not None else source.interval_seconds
        if chosen is None:
            raise ValueError(
                f"{source.function_id}: {source.expression} has no fixed interval; give one"
            )
        if chosen <= 0:
            raise ValueError("a schedule's interval must be positive")
        self.source = source
        self.function = function
        self.interval = float(chosen)
        self.quiet = quiet
        self.invocations = 0
        self.errors = 0
        super().__init__(f"pingpost-schedule-{source.function_id}-{source.event_name}")

    def describe(self) -> str:
        """One line for the banner, e.g. "every 30 s -> RetryFunction (rate(5 minutes) on AWS)"."""
        source = self.source
        return f"every {self.interval:g} s -> {source.function_id} ({source.expression} on AWS)"

    def _run(self) -> None:
        """Fire on a fixed grid so slow runs don't make the schedule drift."""
        next_at = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            self.fire()
            next_at += self.interval
            now = time.monotonic()
            if next_at < now:
                next_at += math.ceil((now - next_at) / self.interval) * self.interval

    def fire(self) -> None:
        """Invoke once; an exception is printed and the schedule goes on."""
        self.invocations += 1
        try:
            self.function.invoke(scheduled_event(self.source))
        except (Exception, SystemExit):
            self.errors += 1
            report_exception(f"{self.source.function_id} failed on its schedule:")
        else:
            if not self.quiet:
                report(f"schedule -> {self.source.function_id}: done")

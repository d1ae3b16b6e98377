"""Faults between the exchange and its AWS endpoint, injected with botocore's event hooks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError


class Killed(BaseException):
    """The process died here: nothing after this point of the request runs."""


@dataclass
class Fault:
    """How many calls a fault has hit so far."""

    hits: int = 0


@contextmanager
def fault(
    client: Any,
    operation: str,
    *,
    lose: bool = False,
    die: bool = False,
    code: str = "InternalServerError",
    delay: float = 0,
    when: Callable[[dict[str, Any]], bool] = lambda params: True,
    times: int = 1,
) -> Iterator[Fault]:
    """Make the next `times` calls of `operation` for which `when(params)` holds fail.

    By default the call fails before it is sent (nothing applied) with the error `code`
    (a throttle is "ThrottlingException"). lose=True: it is applied, then its answer is lost
    (the caller sees an error for a write that happened). die=True: the process dies before
    the call is sent (Killed escapes every handler). delay: the call is sent that many
    seconds late, and succeeds.
    """
    seen = Fault()
    service = client.meta.service_model.service_id.hyphenize()
    pending: list[bool] = []

    def before(params: dict[str, Any], **_: Any) -> None:
        hit = seen.hits < times and when(params)
        if hit:
            seen.hits += 1
            if die:
                raise Killed(operation)
            if delay:
                time.sleep(delay)
                hit = False
            elif not lose:
                raise ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)
        pending.append(hit)

    def after(**_: Any) -> None:
        if pending and pending.pop():
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "injected, applied"}},
                operation,
            )

    events = client.meta.events
    events.register(f"before-parameter-build.{service}.{operation}", before)
    events.register(f"after-call.{service}.{operation}", after)
    try:
        yield seen
    finally:
        events.unregister(f"before-parameter-build.{service}.{operation}", before)
        events.unregister(f"after-call.{service}.{operation}", after)


_CODES = {"fail": "InternalServerError", "throttle": "ThrottlingException"}


@dataclass
class Plan:
    """Which call of a step to fault and how; kind None only counts the calls."""

    kind: str | None = None  # fail, throttle, lose, die or delay
    at: int = -1  # the index of the call to fault, counted from 0
    delay: float = 0.4
    calls: list[str] = field(default_factory=list)  # every call made, by operation
    held: threading.Event = field(default_factory=threading.Event)  # the delayed call waits


@contextmanager
def faulting(plan: Plan, clients: Sequence[Any]) -> Iterator[Plan]:
    """Count every call `clients` make, and fault the one `plan` names."""
    lock = threading.Lock()
    local = threading.local()

    def before(model: Any, **_: Any) -> None:
        with lock:
            index = len(plan.calls)
            plan.calls.append(model.name)
        lost = False
        if index == plan.at:
            if plan.kind == "die":
                raise Killed(model.name)
            if plan.kind in _CODES:
                error = {"Error": {"Code": _CODES[plan.kind], "Message": "injected"}}
                raise ClientError(error, model.name)  # type: ignore[arg-type]
            if plan.kind == "delay":
                plan.held.set()
                time.sleep(plan.delay)
            lost = plan.kind == "lose"
        local.__dict__.setdefault("pending", []).append(lost)

    def after(model: Any, **_: Any) -> None:
        pending = local.__dict__.setdefault("pending", [])
        if pending and pending.pop():
            error = {"Error": {"Code": "InternalServerError", "Message": "injected, applied"}}
            raise ClientError(error, model.name)  # type: ignore[arg-type]

    hooks = []
    for client in clients:
        service = client.meta.service_model.service_id.hyphenize()
        hooks += [
            (client, f"before-parameter-build.{service}", before),
            (client, f"after-call.{service}", after),
        ]
    for client, event, hook in hooks:
        client.meta.events.register(event, hook)
    try:
        yield plan
    finally:
        for client, event, hook in hooks:
            client.meta.events.unregister(event, hook)

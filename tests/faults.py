"""Faults between the exchange and its AWS endpoint, injected with botocore's event hooks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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

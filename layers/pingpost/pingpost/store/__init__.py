"""The only code that talks to AWS. DynamoDB: leads, partners, vendors, counters (a module a
table), deliveries (the leads' delivery records and outbox), sales (one write over the leads and
counters tables), figures and counting (the day figures, from the leads' stream). SQS: queues.
SSM Parameter Store: secrets."""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

# Every AWS call says it is the exchange's (CloudTrail's userAgent), in one fixed text:
# botocore otherwise builds its own (its features, its environment) twice for each request,
# about a seventh of the CPU a small call costs the client.
# (platform.python_version() would parse sys.version with a regular expression at import)
USER_AGENT = "pingpost python/" + ".".join(map(str, sys.version_info[:3]))  # + botocore's


def client_config(read_timeout: float, **more: Any) -> Config:
    """What every AWS client of the exchange shares (retries, timeouts, User-Agent), and
    its own read timeout and any more settings."""
    return Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=2,
        read_timeout=read_timeout,
        user_agent=USER_AGENT,
        **more,
    )


_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@cache
def dynamodb() -> DynamoDBClient:
    """A DynamoDB client for whatever endpoint the standard AWS environment names."""
    return boto3.client("dynamodb", config=client_config(5, max_pool_connections=50))


def transact(items: Sequence[Any], attempts: int = 5) -> list[str | None] | None:
    """Write `items` in one transaction, again shortly when it met another at the same moment.

    None when it is written; else the cancellation codes of a transaction a condition refused
    (one per item, in order). botocore gives the call a ClientRequestToken and keeps it across
    its own retries, so an attempt whose answer was lost is not applied twice.
    """
    for attempt in range(attempts):
        try:
            dynamodb().transact_write_items(TransactItems=list(items))
        except ClientError as error:
            reasons: Any = error.response.get("CancellationReasons", [])
            codes: list[str | None] = [r.get("Code") for r in reasons]
            if "ConditionalCheckFailed" in codes:
                return codes
            if "TransactionConflict" in codes and attempt < attempts - 1:
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
                continue
            raise
        return None
    raise RuntimeError("unreachable")  # pragma: no cover


def _exact(value: Any) -> Any:
    # DynamoDB numbers are decimal: a float goes as the decimal it prints as (0.1, not 0.1000…).
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(v) for v in value]
    return value


def to_item(values: Mapping[str, Any]) -> dict[str, AttributeValueTypeDef]:
    """A DynamoDB item from plain values (None values are left out)."""
    return {k: _serializer.serialize(_exact(v)) for k, v in values.items() if v is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values from a DynamoDB item (numbers come back as Decimal), as boto3's
    TypeDeserializer makes them, in about 0.56x its time for the kinds items hold (a container
    reads hundreds of partners at a lead's first meeting: boto3's took as long as validating
    them)."""
    return {k: _plain(v) for k, v in item.items()}


def _plain(value: Mapping[str, Any]) -> Any:
    # The kinds items hold, most frequent first; each value names one.
    if "S" in value:
        return value["S"]
    if "M" in value:
        return {k: _plain(v) for k, v in value["M"].items()}
    if "N" in value:
        return Decimal(value["N"])  # exact, as DynamoDB's 38 digits are
    if "BOOL" in value:
        return value["BOOL"]
    if "L" in value:
        return [_plain(v) for v in value["L"]]
    # NULL, sets, binary (seldom): boto3's own.
    return _deserializer.deserialize(value)  # type: ignore[arg-type]


class Expiring[K, V]:
    """A per-container copy of values that may be a few seconds stale, shared by threads.

    It holds at most `size` values and `size` misses (a value that is None: an unknown Key,
    say), the oldest loaded going first, and remembers a miss for `miss_seconds` at most: a
    flood of unknown keys neither grows the container's memory nor pushes known values out.
    """

    def __init__(
        self,
        seconds: float | Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
        *,
        size: int = 1024,
        miss_seconds: float = 1.0,
    ) -> None:
        # A callable is asked each time: the settings are read once the environment is set.
        self._seconds = seconds if callable(seconds) else (lambda: seconds)
        self._clock = clock
        self._size = size
        self._miss_seconds = miss_seconds
        self._lock = threading.Lock()
        self._values: dict[K, tuple[float, V]] = {}
        self._misses: dict[K, float] = {}
        self._generation = 0  # forget() and clear() count up: a load begun before is not kept

    def _hit(self, key: K, now: float) -> tuple[bool, V | None]:
        """(True, value) while `key` is fresh; (False, None) when it must be loaded."""
        limit = self._seconds()
        with self._lock:
            found = self._values.get(key)
            if found is not None and now - found[0] < limit:
                return True, found[1]
            missed = self._misses.get(key)
        if missed is not None and now - missed < min(limit, self._miss_seconds):
            return True, None
        return False, None

    def _store(self, key: K, loaded: float, value: V, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # forgotten while it loaded: the next get loads it again
            self._values.pop(key, None)
            self._misses.pop(key, None)
            kept: dict[K, Any] = self._misses if value is None else self._values
            kept[key] = loaded if value is None else (loaded, value)  # the newest, at the end
            while len(kept) > self._size:
                del kept[next(iter(kept))]

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The cached value of `key`, loaded again once it is older than the time allowed."""
        now = self._clock()
        fresh, value = self._hit(key, now)
        if fresh:
            return value  # type: ignore[return-value]  # None only when None was loaded
        with self._lock:
            generation = self._generation
        loaded = load()
        self._store(key, now, loaded, generation)
        return loaded

    def peek(self, key: K) -> V | None:
        """The cached value of `key` while it is fresh, else None."""
        return self._hit(key, self._clock())[1]

    def put(self, key: K, value: V) -> None:
        """Remember `value` as of now."""
        with self._lock:
            generation = self._generation
        self._store(key, self._clock(), value, generation)

    def forget(self, key: K) -> None:
        """Drop `key` (after this container changed it)."""
        with self._lock:
            self._generation += 1
            self._values.pop(key, None)
            self._misses.pop(key, None)

    def clear(self) -> None:
        """Forget everything (after a write this container made)."""
        with self._lock:
            self._generation += 1
            self._values.clear()
            self._misses.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._values) + len(self._misses)

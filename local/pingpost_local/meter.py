"""What the product's AWS calls cost: each call, and the capacity units DynamoDB bills for it.

The local endpoint does not bill, so the units are computed as DynamoDB computes them, from
the sizes of the items each call touches (read before and after it through a client of its
own): a write is ceil(size / 1 KB) write units of the larger of the item before and after it,
twice that inside a transaction, plus a unit per index entry put or deleted; a strongly
consistent read is ceil(size / 4 KB) read units per item, half that when eventually
consistent, a whole unit at least.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

_KB = 1024


def _value_size(value: dict[str, Any]) -> int:
    """The bytes DynamoDB counts for one attribute value (its documented item-size rules)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = len(str(Decimal(inner)).lstrip("-").replace(".", "").lstrip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(_value_size({"N": n}) for n in inner)
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in inner.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    """The size DynamoDB bills an item by (0 when there is none)."""
    if not item:
        return 0
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


@dataclass
class Call:
    """One AWS call: `service.Operation`, and the DynamoDB units it consumed."""

    name: str
    write_units: int = 0
    read_units: float = 0


@dataclass
class Calls:
    """The calls made while metering."""

    made: list[Call] = field(default_factory=list)

    def count(self) -> Counter[str]:
        return Counter(c.name for c in self.made)

    @property
    def write_units(self) -> int:
        return sum(c.write_units for c in self.made)

    @property
    def read_units(self) -> float:
        return sum(c.read_units for c in self.made)


@dataclass(frozen=True)
class _Table:
    keys: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...]  # the key attributes of each global secondary index


class Meter:
    """Counts the calls of `clients` (botocore clients of the product) while `metering()`.

    `raw`: a DynamoDB client of the same endpoint that is not metered, to read item sizes.
    """

    def __init__(self, clients: Sequence[Any], raw: Any) -> None:
        self._clients = clients
        self._raw = raw
        self._tables: dict[str, _Table] = {}
        self._before: list[tuple[str, dict[str, Any], dict[str, Any] | None, int]] = []
        self._consistent = False
        self._calls: Calls | None = None

    def _table(self, name: str) -> _Table:
        if name not in self._tables:
            described = self._raw.describe_table(TableName=name)["Table"]
            self._tables[name] = _Table(
                tuple(k["AttributeName"] for k in described["KeySchema"]),
                tuple(
                    tuple(k["AttributeName"] for k in index["KeySchema"])
                    for index in described.get("GlobalSecondaryIndexes", [])
                ),
            )
        return self._tables[name]

    def _item(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._raw.get_item(
            TableName=table, Key=key, ConsistentRead=True
        ).get("Item")
        return found

    def _writes(
        self, operation: str, params: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any], int]]:
        """(table, key, multiplier) of every item a write call may change."""
        if operation == "TransactWriteItems":
            out = []
            for entry in params["TransactItems"]:
                ((kind, body),) = entry.items()
                if kind == "ConditionCheck":
                    continue
                out.append((body["TableName"], self._key_of(body), 2))
            return out
        if operation == "BatchWriteItem":
            return [
                (table, self._key_of(next(iter(request.values()))), 1)
                for table, requests in params["RequestItems"].items()
                for request in requests
            ]
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            return [(params["TableName"], self._key_of(params), 1)]
        return []

    def _key_of(self, body: dict[str, Any]) -> dict[str, Any]:
        if "Key" in body:
            return dict(body["Key"])
        item = body["Item"]
        return {name: item[name] for name in self._table(body["TableName"]).keys}

    def _before_call(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.service_model.endpoint_prefix != "dynamodb":
            return
        requests = params.get("RequestItems", {}).values() if model.name == "BatchGetItem" else []
        self._consistent = any(r.get("ConsistentRead") for r in [params, *requests])
        self._before = [
            (table, key, self._item(table, key), times)
            for table, key, times in self._writes(model.name, params)
        ]

    def _after_call(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if self._calls is None:
            return
        service = model.service_model.endpoint_prefix
        call = Call(f"{service}.{model.name}")
        if service == "dynamodb":
            failed = "Error" in parsed
            for table, key, before, times in self._before:
                after = self._item(table, key)
                size = max(item_size(before), item_size(after))
                call.write_units += times * max(1, math.ceil(size / _KB))
                if not failed:
                    call.write_units += self._index_units(table, before, after)
            call.read_units = self._read_units(model.name, parsed, self._consistent)
        self._before = []
        self._calls.made.append(call)

    def _index_units(
        self, table: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> int:
        units = 0
        for keys in self._table(table).indexes:
            was = tuple(before.get(k) for k in keys) if before else None
            now = tuple(after.get(k) for k in keys) if after else None
            old = was is not None and None not in was
            new = now is not None and None not in now
            units += int(old and (not new or was != now)) + int(new and (not old or was != now))
        return units

    @staticmethod
    def _read_units(operation: str, parsed: dict[str, Any], consistent: bool) -> float:
        def units(size: int) -> float:
            whole = max(1, math.ceil(size / (4 * _KB)))
            return float(whole) if consistent else whole / 2

        if operation == "GetItem":
            return units(item_size(parsed.get("Item")))
        if operation == "BatchGetItem":
            found = [i for items in parsed.get("Responses", {}).values() for i in items]
            return sum(units(item_size(i)) for i in found) or 1.0
        if operation in ("Query", "Scan"):
            return units(sum(item_size(i) for i in parsed.get("Items", [])))
        return 0.0

    @contextmanager
    def metering(self) -> Iterator[Calls]:
        """The calls made inside the block."""
        self._calls = Calls()
        for client in self._clients:
            client.meta.events.register("before-parameter-build", self._before_call, "meter-in")
            client.meta.events.register("after-call", self._after_call, "meter-out")
        try:
            yield self._calls
        finally:
            for client in self._clients:
                client.meta.events.unregister("before-parameter-build", unique_id="meter-in")
                client.meta.events.unregister("after-call", unique_id="meter-out")
            self._calls = None

"""Two repairs that make moto's DynamoDB a faithful local stand-in under concurrent requests.

1. One DynamoDB call at a time: moto's handlers share table state without locks, and its
   TransactWriteItems snapshots tables while other threads write to them.
2. TransactWriteItems snapshots only the items it touches: moto deep-copies every table the
   transaction names, so each sale would cost time growing with the whole leads table.
DynamoDB itself has neither limit; the exchange's code is unchanged, only the stand-in is fixed.
"""

from __future__ import annotations

import copy
import threading
import types
from typing import Any

_LOCK = threading.Lock()
_REAL_DEEPCOPY = copy.deepcopy


def make_safe() -> None:
    """Apply both repairs to moto in this process (once)."""
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_pingpost", False):
        return
    unlocked = DynamoHandler.call_action

    def call_action(self: DynamoHandler) -> Any:
        with _LOCK:
            return unlocked(self)

    call_action._pingpost = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]

    backend = models.DynamoDBBackend
    whole_tables = backend.transact_write_items
    # Inside moto's transaction, "copy.deepcopy(table)" hands back the table itself.
    shallow = types.SimpleNamespace(
        deepcopy=lambda value, memo=None: (
            value if isinstance(value, Table) else _REAL_DEEPCOPY(value, memo)
        )
    )

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = [_snapshot(self, op) for item in transact_items for op in item.values()]
        setattr(models, "copy", shallow)  # noqa: B010 - the module moto's code reads
        try:
            whole_tables(self, transact_items)
        except Exception:
            for table_name, key, before in reversed(saved):
                _restore(self, table_name, key, before)
            raise
        finally:
            setattr(models, "copy", copy)  # noqa: B010

    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _snapshot(backend: Any, op: dict[str, Any]) -> tuple[str, dict[str, Any], Any]:
    table_name = op["TableName"]
    table = backend.get_table(table_name)
    if "Key" in op:
        key = op["Key"]
    else:
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
    item = backend.get_item(table_name, key)
    return table_name, key, None if item is None else _REAL_DEEPCOPY(item.to_json()["Attributes"])


def _restore(backend: Any, table_name: str, key: dict[str, Any], before: Any) -> None:
    if before is None:
        if backend.get_item(table_name, key) is not None:
            backend.delete_item(table_name, key)
    else:
        backend.put_item(table_name, before)

"""The embedded AWS endpoint: moto's server mode on loopback, repaired for concurrent use.

moto's backends share state without locks, and the local runner calls them from many threads
(requests, SQS and stream pollers, schedules). Five repairs (1, 3, 2, 12 and 13) make it a
faithful stand-in, and ten more make it quicker (14 also mends binary values):
1. One DynamoDB call at a time: its TransactWriteItems snapshots tables while other threads
   write to them.
2. TransactWriteItems snapshots only the items it touches: moto deep-copies every table the
   transaction names, so each sale would cost time growing with the whole leads table.
3. One SQS call at a time, except while a long poll waits: pollers receiving at once could
   take the same message twice, or fail while moving a message to its dead-letter queue
   (ValueError from list.remove) and so hide it until its visibility timeout ends.
4. moto's dispatcher lists its own package's folders (a stat of each) on every request to
   find the service, and the handler's methods on every call: each is listed once.
5. DynamoDB's item operations read their JSON request and write their JSON answer as they
   are, instead of walking the API model for every attribute value (over half of moto's time
   for a GetItem of a lead). Binary values are kept as the base64 text of the wire (moto
   decodes them; the answers are the same); errors and every other operation keep moto's path.
6. SQS reads the clock and a queue's settings cheaply: moto computes a time by datetime
   arithmetic each time it looks at a message, and receiving a message recomputes every
   attribute of the queue (its counts walk all messages) to read the retention period, so a
   receive cost time growing with the square of the queue's length.
7. An update expression is parsed once per text: moto parses it twice on every UpdateItem
   (and every update of a transaction), and validates a copy of the parsed tree each time.
8. The ten walks that validate that copy tell a node's kind by its class, asked once per
   class: moto rebuilds each walk's list of kinds at every node and checks them with the
   slow isinstance of abstract classes.
9. That copy copies each node's attributes directly, not by copy.deepcopy's generic protocol.
10. DynamoDB's and SQS's calls (JSON with an X-Amz-Target header, to the path /) go from the
   server to moto's handler of the service directly, as moto's Flask view for them would
   hand them, not through the Flask app moto builds per service (its routing, request
   context and CORS headers, which SDKs do not read, were a fifth of the server's time).
11. A stored item is measured once when it is made (DynamoDB's 400 KB limit): moto measures
   all of it again before adding each attribute, a time growing with the square of its size.
12. A TransactWriteItems that is cancelled leaves no record in a table's stream: moto undoes
   its writes to the items but not the records those writes added to the stream.
13. A TransactWriteItems that would take an item past 400 KB is cancelled with the reason
   `ValidationError` for that item, as DynamoDB answers: moto fails the whole call with a
   ValidationException that does not say which item.
14. DynamoDB Streams' GetRecords writes its records as JSON as they are, as repair 5 does for
   items: moto walked its API model for every value of every image (about 20 ms a record, so
   a test's first read of a stream of 1,500 writes took 40 s), and wrote binary values
   base64-encoded twice.
15. A connection serves one call after another: werkzeug's development server closes each after
   one answer (it cannot tell whether the application read the whole request), so every call
   of an SDK connected anew, a server thread each time. A direct call (repair 10) whose body
   has a Content-Length is read whole and answered on a connection kept open (a POST; any
   other request is werkzeug's, which closes it), until the endpoint stops.
AWS itself has none of these limits; the exchange's code is unchanged, only the stand-in is
fixed. The repairs reach into moto's internals, so pyproject.toml pins moto to the range
tested here (tests/integration/test_local_aws.py).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import json
import logging
import socket
import threading
import time
import types
from datetime import datetime
from typing import Any

from moto.server import ThreadedMotoServer

from pingpost_local.background import LOOPBACK

_DYNAMODB_LOCK = threading.Lock()
_SQS_LOCK = threading.Lock()
_holding = threading.local()  # .sqs: this thread is inside an SQS call, holding _SQS_LOCK
_REAL_DEEPCOPY = copy.deepcopy
_ITEM_LIMIT = 405_000  # moto's own limit for an item's bytes (DynamoDB's is about 400 KB)


def start_aws_endpoint() -> tuple[ThreadedMotoServer, str]:
    """Start moto's server mode on a free loopback port; return the server and its URL."""
    make_safe()
    werkzeug_log = logging.getLogger("werkzeug")
    if werkzeug_log.level == logging.NOTSET:
        # moto logs every AWS call through werkzeug; that would drown the exchange's own log.
        werkzeug_log.setLevel(logging.WARNING)
    server = _Server(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


class _Server(ThreadedMotoServer):
    """moto's server thread, serving moto's application behind the direct route (repair 10)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._opened: set[socket.socket] = set()  # the connections kept open (repair 15)

    def stop(self) -> None:
        """Stop serving: no new connection, and those kept open are ended (their threads with
        them), so that a client of a stopped endpoint fails as it did before repair 15."""
        super().stop()
        for connection in list(self._opened):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _server_entry(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.exceptions import InternalServerError
        from werkzeug.serving import make_server

        direct = _direct_calls()
        opened = self._opened

        class KeptOpen(MotoRequestHandler):
            """Repair 15: a direct call answered without closing its connection."""

            # Its headers and body are two writes: without this, the second waits for the
            # client's delayed acknowledgement of the first (40 ms) on a connection kept open.
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                opened.add(self.connection)

            def finish(self) -> None:
                opened.discard(self.connection)
                super().finish()

            def run_wsgi(self) -> None:
                environ = self.make_environ()
                whole = (
                    environ["REQUEST_METHOD"] == "POST"
                    and environ.get("CONTENT_LENGTH", "").isdigit()
                    and "HTTP_TRANSFER_ENCODING" not in environ
                )
                try:
                    response = direct(environ) if whole else None
                except Exception:  # answered as werkzeug answers a failing application
                    logging.getLogger("werkzeug").exception("Error on request")
                    response = InternalServerError().get_response(environ)
                    response.headers["Connection"] = "close"
                if response is None:
                    super().run_wsgi()  # (nothing of the request read yet)
                    return
                self.environ = environ
                body = response.get_data()
                self.send_response(response.status_code)
                for key, value in response.get_wsgi_headers(environ).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        application = _direct_route(DomainDispatcherApplication(create_backend_app), direct)
        self._server = make_server(
            self._ip_address, self._port, application, True, request_handler=KeptOpen
        )
        self._server_ready_event.set()
        self._server.serve_forever()


def _direct_calls() -> Any:
    """A function that answers a DynamoDB or SQS call (a werkzeug Response), or None for any
    other request, of which it reads nothing (repair 10)."""
    from botocore.exceptions import ClientError
    from flask import Response
    from moto.core.request import normalize_request
    from moto.dynamodb.responses import DynamoHandler
    from moto.moto_api import recorder
    from moto.moto_server.werkzeug_app import BackendRequest
    from moto.sqs.responses import SQSResponse

    handlers = {"DynamoDB_20120810": DynamoHandler, "AmazonSQS": SQSResponse}

    def answer(environ: dict[str, Any]) -> Response | None:
        target = environ.get("HTTP_X_AMZ_TARGET", "").partition(".")[0]
        handler = handlers.get(target)
        if handler is None or environ.get("PATH_INFO") != "/":
            return None
        # What moto's view (moto.core.utils.convert_to_flask_response) does with a request.
        request = normalize_request(BackendRequest(environ))
        request.get_data()  # the whole body, whatever the handler reads of it (repair 15)
        recorder._record_request(request)
        try:
            result = handler.dispatch(request, request.raw_url, dict(request.headers))
        except ClientError as error:
            result = 400, {}, error.response["Error"]["Message"]
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        return Response(response=content, status=status, headers=headers)

    return answer


def _direct_route(application: Any, direct: Any) -> Any:
    """moto's application, the direct calls answered first."""

    def route(environ: dict[str, Any], start_response: Any) -> Any:
        response = direct(environ)
        if response is None:
            return application(environ, start_response)
        return response(environ, start_response)

    return route


def make_safe() -> None:
    """Apply the repairs to moto in this process (once)."""
    from moto.dynamodb.responses import DynamoHandler
    from moto.sqs.models import Queue
    from moto.sqs.responses import SQSResponse

    if getattr(DynamoHandler.call_action, "_pingpost", False):
        return
    _one_at_a_time(DynamoHandler, _DYNAMODB_LOCK)
    _transactions_copy_items()
    _one_at_a_time(SQSResponse, _SQS_LOCK, _holding)
    waiting = Queue.wait_for_messages

    def wait_for_messages(self: Queue, timeout: int) -> None:
        # A long poll waits for messages that other calls send: it lets them in meanwhile
        # (when the wait is inside an SQS call of this thread, which holds the lock).
        if not getattr(_holding, "sqs", False):
            waiting(self, timeout)
            return
        _SQS_LOCK.release()
        try:
            waiting(self, timeout)
        finally:
            _SQS_LOCK.acquire()

    Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]

    from moto import backends
    from moto.core import responses, utils

    listed = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: listed
    listing = functools.cache(utils.method_names_from_class)
    setattr(responses, "method_names_from_class", listing)  # noqa: B010 - the name moto's code reads
    _items_as_json(DynamoHandler, _ITEM_OPERATIONS)
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    _items_as_json(DynamoDBStreamsHandler, frozenset({"GetRecords"}))
    _sqs_reads_cheaply()
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    # The same text gives the same tree; moto's validator works on a copy of it.
    UpdateExpressionParser.make = functools.lru_cache(maxsize=1024)(UpdateExpressionParser.make)
    _trees_walked_by_type()
    _trees_copied_directly()
    _items_measured_once()


def _one_at_a_time(
    handler: Any, lock: threading.Lock, holding: threading.local | None = None
) -> None:
    unlocked = handler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            if holding is None:
                return unlocked(self)
            holding.sqs = True
            try:
                return unlocked(self)
            finally:
                holding.sqs = False

    call_action._pingpost = True  # type: ignore[attr-defined]
    handler.call_action = call_action


def _transactions_copy_items() -> None:
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

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
        streams = {
            shard: len(shard.items)
            for name in {op["TableName"] for item in transact_items for op in item.values()}
            if name in self.tables and (shard := self.tables[name].stream_shard) is not None
        }
        setattr(models, "copy", shallow)  # noqa: B010 - the module moto's code reads
        self.put_item, self.update_item = _sized(self.put_item), _sized(self.update_item)
        try:
            whole_tables(self, transact_items)
        except Exception:
            for table_name, key, before in reversed(saved):
                _restore(self, table_name, key, before)
            for shard, length in streams.items():
                del shard.items[length:]
            raise
        finally:
            setattr(models, "copy", copy)  # noqa: B010
            del self.put_item, self.update_item  # the class's again

    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class ValidationError(Exception):
    """An item of a transaction that may not be written: moto names a cancellation reason by
    its exception's class (repair 13)."""


def _sized(write: Any) -> Any:
    from moto.dynamodb.exceptions import ItemSizeTooLarge, ItemSizeToUpdateTooLarge

    def sized(*args: Any, **kwargs: Any) -> Any:
        try:
            return write(*args, **kwargs)
        except (ItemSizeTooLarge, ItemSizeToUpdateTooLarge) as error:
            raise ValidationError(error.message) from None

    return sized


# The operations whose requests and answers are items and keys (moto's model walk is the slow
# part of each); the control plane (tables, indexes) keeps moto's path.
_ITEM_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)


def _items_as_json(handler: Any, operations: frozenset[str]) -> None:
    from moto.core.responses import ActionResult

    parse, serialize = handler.parse_parameters, handler.serialized

    def parse_parameters(self: Any, request: Any) -> None:
        if self._get_action() in operations:
            # A body that is not JSON goes on to moto's parser, which answers it.
            with contextlib.suppress(ValueError):
                self.params = json.loads(request.data or b"{}")
                return
        parse(self, request)

    def serialized(self: Any, result: ActionResult) -> Any:
        if self._get_action() not in operations or isinstance(result.result, Exception):
            return serialize(self, result)
        body = json.dumps(result.result, default=_json_value, separators=(",", ":"))
        headers = {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}
        return 200, headers, body

    handler.parse_parameters = parse_parameters
    handler.serialized = serialized


def _sqs_reads_cheaply() -> None:
    from moto.core.utils import camelcase_to_underscores
    from moto.core.utils import unix_time as slow_clock
    from moto.sqs import models

    def unix_time(dt: datetime | None = None) -> float:
        # moto's clock: the seconds from the epoch to `dt` (a naive UTC time), or to now.
        return time.time() if dt is None else slow_clock(dt)

    def unix_time_millis(dt: datetime | None = None) -> float:
        return unix_time(dt) * 1000.0

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        period = self.get_queue(queue_name).message_retention_period
        return bool(int(period) + message.sent_timestamp / 1000 > unix_time())

    setattr(models, "unix_time", unix_time)  # noqa: B010 - the names moto's code reads
    setattr(models, "unix_time_millis", unix_time_millis)  # noqa: B010
    underscored = functools.cache(camelcase_to_underscores)
    setattr(models, "camelcase_to_underscores", underscored)  # noqa: B010
    models.SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[method-assign]


def _trees_walked_by_type() -> None:
    from moto.dynamodb.parsing import ast_nodes

    tree: Any = ast_nodes  # moto's module declares its classes without types
    node_class, traverser = tree.Node, tree.DepthFirstTraverser
    descended = (tree.Expression, tree.UpdateExpressionFunction)
    is_node: dict[type, bool] = {}
    descends: dict[type, bool] = {}
    chosen: dict[tuple[type, type], Any] = {}  # (walk, node class) -> the map's kind, or None

    # moto asks isinstance of its abstract node classes (a Python-level check each time), and
    # rebuilds a walk's map of node kinds to actions at every node: both are asked once per
    # class here, by the same rules (the first kind of the map a node is an instance of).
    def action(walk: Any, kind: type) -> Any:
        key = (type(walk), kind)
        base = chosen.get(key, chosen)
        if base is chosen:
            kinds = walk._processing_map()
            base = chosen[key] = next((b for b in kinds if issubclass(kind, b)), None)
        if base is None:
            return None
        actions = walk.__dict__.get("_actions")
        if actions is None:
            actions = walk.__dict__["_actions"] = walk._processing_map()
        return actions[base]

    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        kind = type(node)
        known = is_node.get(kind)
        if known is None:
            known = is_node[kind] = issubclass(kind, node_class)
        if not known:
            return node
        parent_node = node.parent
        if node.children is not None:
            for i, child_node in enumerate(node.children):
                self.pre_processing_of_child(node, i)
                self.traverse_node_recursively(child_node, i)
        act = action(self, kind)
        if act is not None:
            node = act(node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    def find_clauses(self: Any, clause_types: Any) -> list[Any]:
        clauses: list[Any] = []
        for child in self.children or []:
            kind = type(child)
            if kind in clause_types:
                clauses.append(child)
                continue
            deeper = descends.get(kind)
            if deeper is None:
                deeper = descends[kind] = issubclass(kind, descended)
            if deeper:
                clauses.extend(child.find_clauses(clause_types))
        return clauses

    traverser.traverse_node_recursively = traverse_node_recursively
    node_class.find_clauses = find_clauses


def _trees_copied_directly() -> None:
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    atomic = (str, int, float, bool, type(None))

    # moto validates a deep copy of the parsed tree each time; copying a node's attributes
    # directly is what copy.deepcopy does, without its generic protocol per node.
    def node_copy(self: Any, memo: dict[int, Any]) -> Any:
        copied = object.__new__(type(self))
        memo[id(self)] = copied
        attributes = copied.__dict__
        for name, value in self.__dict__.items():
            attributes[name] = value if isinstance(value, atomic) else _REAL_DEEPCOPY(value, memo)
        return copied

    Node.__deepcopy__ = node_copy


def _items_measured_once() -> None:
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    # moto checks, before each attribute it adds, the size so far plus the new attribute's
    # against its limit; the sizes only grow, so the last check (the whole item) decides.
    def made(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        values = {key: DynamoType(value) for key, value in attrs.items()}
        if sum(bytesize(key) + value.size() for key, value in values.items()) > _ITEM_LIMIT:
            raise ItemSizeTooLarge
        self.attrs = LimitedSizeDict.__new__(LimitedSizeDict)
        dict.update(self.attrs, values)

    Item.__init__ = made  # type: ignore[method-assign]


def _json_value(value: Any) -> Any:
    """What moto's serializer writes for the values JSON has no type for."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON")


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

"""The embedded AWS endpoint stays faithful when several pollers and writers call it at once."""

from __future__ import annotations

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.conftest import _client, _dynamodb, _sqs

MESSAGES = 300
POLLERS = 6


def test_concurrent_pollers_move_each_message_to_the_dead_letter_queue_once(
    aws_endpoint: str,
) -> None:
    # Given a queue whose messages were all received once, with a redrive after one receive
    sqs = _sqs(aws_endpoint)
    dead = sqs.create_queue(QueueName="proof-dead")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = {"deadLetterTargetArn": dead_arn, "maxReceiveCount": "1"}
    queue = sqs.create_queue(
        QueueName="proof-live",
        Attributes={"RedrivePolicy": json.dumps(policy), "VisibilityTimeout": "1"},
    )["QueueUrl"]
    for start in range(0, MESSAGES, 10):
        entries = [{"Id": str(n), "MessageBody": str(n)} for n in range(start, start + 10)]
        sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    seen: set[str] = set()
    while len(seen) < MESSAGES:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
        seen.update(message["Body"] for message in got.get("Messages", []))
    time.sleep(1.1)  # the visibility timeout: they are all visible again

    # When several pollers receive at once, so that each finds them all due for the redrive
    start = threading.Barrier(POLLERS)

    def poll(_: int) -> int:
        client = boto3.client(
            "sqs",
            endpoint_url=aws_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"total_max_attempts": 1}),  # a failed call is not hidden
        )
        start.wait()
        received = 0
        for _ in range(20):
            got = client.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            received += len(got.get("Messages", []))
        return received

    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns often, as on a busy machine
    try:
        with ThreadPoolExecutor(POLLERS) as pool:
            received = sum(pool.map(poll, range(POLLERS)))
    finally:
        sys.setswitchinterval(switching)

    # Then no call fails, none is received again, and each message is dead-lettered exactly once
    assert received == 0
    bodies: list[str] = []
    deadline = time.monotonic() + 30
    while len(bodies) < MESSAGES and time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=dead, MaxNumberOfMessages=10, VisibilityTimeout=60)
        bodies += [message["Body"] for message in got.get("Messages", [])]
    assert sorted(bodies, key=int) == [str(n) for n in range(MESSAGES)]


def test_a_long_poll_does_not_hold_up_other_calls(aws_endpoint: str) -> None:
    # Given a poller waiting on an empty queue
    sqs = _sqs(aws_endpoint)
    queue = sqs.create_queue(QueueName="long-poll")["QueueUrl"]
    received: list[str] = []

    def wait() -> None:
        got = _sqs(aws_endpoint).receive_message(QueueUrl=queue, WaitTimeSeconds=5)
        received.extend(message["Body"] for message in got.get("Messages", []))

    waiting = threading.Thread(target=wait)
    waiting.start()
    time.sleep(0.5)

    # When another client sends while it waits
    sqs.send_message(QueueUrl=queue, MessageBody="hello")
    waiting.join(timeout=10)

    # Then the send was not held up, and the waiting poller got the message
    assert not waiting.is_alive()
    assert received == ["hello"]


def _table(endpoint: str, name: str, **more: Any) -> Any:
    """A DynamoDB client, and a table `name` keyed by a number `id` (`more`: CreateTable's
    other parameters)."""
    dynamodb = _dynamodb(endpoint)
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
        **more,
    )
    return dynamodb


def test_items_keep_every_type_of_value_and_errors_keep_their_codes(aws_endpoint: str) -> None:
    # Given a table (items travel as plain JSON in both directions)
    from botocore.exceptions import ClientError

    dynamodb = _table(aws_endpoint, "kinds")
    item = {
        "id": {"N": "1"},
        "text": {"S": "héllo <&>"},
        "number": {"N": "-12.50"},
        "binary": {"B": b"\x00\xff raw"},
        "binaries": {"BS": [b"\x01", b"\x02\x03"]},
        "numbers": {"NS": ["1", "2.5"]},
        "texts": {"SS": ["a", "b"]},
        "yes": {"BOOL": True},
        "nothing": {"NULL": True},
        "nested": {"M": {"list": {"L": [{"S": "x"}, {"B": b"\x10"}, {"M": {}}]}}},
    }

    # When it is written, updated, read, queried and scanned
    dynamodb.put_item(TableName="kinds", Item=item)
    dynamodb.update_item(
        TableName="kinds",
        Key={"id": {"N": "1"}},
        UpdateExpression="SET #b = :b ADD numbers :n",
        ConditionExpression="#raw = :old",
        ExpressionAttributeNames={"#b": "more", "#raw": "binary"},
        ExpressionAttributeValues={
            ":b": {"B": b"\xfe"},
            ":n": {"NS": ["3"]},
            ":old": item["binary"],
        },
    )
    got = dynamodb.get_item(TableName="kinds", Key={"id": {"N": "1"}}, ConsistentRead=True)
    scanned = dynamodb.scan(TableName="kinds")
    missing = dynamodb.get_item(TableName="kinds", Key={"id": {"N": "2"}})

    # Then every value comes back as it was written, binary ones as bytes
    expected = item | {"more": {"B": b"\xfe"}, "numbers": {"NS": ["1", "2.5", "3"]}}
    stored = got["Item"]
    assert sorted(stored["numbers"]["NS"], key=float) == expected.pop("numbers")["NS"]
    assert sorted(stored.pop("binaries")["BS"]) == sorted(expected.pop("binaries")["BS"])
    stored.pop("numbers")
    assert {k: v for k, v in stored.items() if k != "texts"} == {
        k: v for k, v in expected.items() if k != "texts"
    }
    assert sorted(stored["texts"]["SS"]) == ["a", "b"]
    assert scanned["Count"] == 1 and scanned["Items"][0]["binary"] == {"B": b"\x00\xff raw"}
    assert "Item" not in missing

    # And a refused write and a cancelled transaction answer as DynamoDB does
    try:
        dynamodb.put_item(
            TableName="kinds",
            Item={"id": {"N": "1"}},
            ConditionExpression="attribute_not_exists(id)",
        )
        raise AssertionError("the conditional put was applied")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ConditionalCheckFailedException"
    try:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "kinds", "Item": {"id": {"N": "3"}}}},
                {
                    "ConditionCheck": {
                        "TableName": "kinds",
                        "Key": {"id": {"N": "1"}},
                        "ConditionExpression": "attribute_not_exists(id)",
                    }
                },
            ]
        )
        raise AssertionError("the transaction was applied")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "TransactionCanceledException"
        reasons = [r["Code"] for r in error.response["CancellationReasons"]]
        assert reasons == ["None", "ConditionalCheckFailed"]
    assert "Item" not in dynamodb.get_item(TableName="kinds", Key={"id": {"N": "3"}})


def test_queue_counts_and_retention_follow_the_clock(aws_endpoint: str) -> None:
    # Given a queue keeping messages a minute: one message received, one delayed, one waiting
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    sqs = _sqs(aws_endpoint)
    queue = sqs.create_queue(QueueName="clock", Attributes={"MessageRetentionPeriod": "60"})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=queue, MessageBody="received")
    assert sqs.receive_message(QueueUrl=queue, VisibilityTimeout=30)["Messages"]
    sqs.send_message(QueueUrl=queue, MessageBody="delayed", DelaySeconds=30)
    sqs.send_message(QueueUrl=queue, MessageBody="waiting")

    # When its counts are read
    counts = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]

    # Then each message is counted where it is
    assert (
        counts["ApproximateNumberOfMessages"],
        counts["ApproximateNumberOfMessagesNotVisible"],
        counts["ApproximateNumberOfMessagesDelayed"],
    ) == ("1", "1", "1")

    # And a message older than the retention period is not received any more
    stored = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues["clock"]
    waiting = next(m for m in stored._messages if m.body == "waiting")
    assert sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0)["Messages"][0]["Body"] == (
        "waiting"
    )
    waiting.sent_timestamp -= 61_000
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)


def test_an_update_expression_used_again_applies_its_new_values(aws_endpoint: str) -> None:
    # Given a table, and an update expression applied once
    from botocore.exceptions import ClientError

    dynamodb = _table(aws_endpoint, "again")
    expression = "SET #f = :v ADD #c :one"

    def update(key: str, field: str, value: str) -> None:
        dynamodb.update_item(
            TableName="again",
            Key={"id": {"N": key}},
            UpdateExpression=expression,
            ExpressionAttributeNames={"#f": field, "#c": "count"},
            ExpressionAttributeValues={":v": {"S": value}, ":one": {"N": "1"}},
        )

    update("1", "colour", "red")

    # When the same text is used again, with other names, values and items
    update("1", "colour", "blue")
    update("2", "size", "large")

    # Then each use applies its own
    items = {
        key: dynamodb.get_item(TableName="again", Key={"id": {"N": key}})["Item"]
        for key in ("1", "2")
    }
    assert items["1"] == {"id": {"N": "1"}, "colour": {"S": "blue"}, "count": {"N": "2"}}
    assert items["2"] == {"id": {"N": "2"}, "size": {"S": "large"}, "count": {"N": "1"}}

    # And a malformed expression is refused every time it is sent
    for _ in range(2):
        try:
            dynamodb.update_item(
                TableName="again",
                Key={"id": {"N": "1"}},
                UpdateExpression="SET = :v",
                ExpressionAttributeValues={":v": {"S": "x"}},
            )
            raise AssertionError("a malformed update expression was applied")
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ValidationException"


def test_update_expressions_keep_their_meaning_and_their_refusals(aws_endpoint: str) -> None:
    # Given an item with a map, a list, a set and a number
    from botocore.exceptions import ClientError

    dynamodb = _table(aws_endpoint, "meaning")
    key = {"id": {"N": "1"}}
    dynamodb.put_item(
        TableName="meaning",
        Item=key
        | {
            "m": {"M": {"a": {"N": "1"}, "deep": {"M": {"x": {"S": "old"}}}}},
            "l": {"L": [{"S": "first"}]},
            "tags": {"SS": ["a", "b"]},
            "n": {"N": "10"},
            "gone": {"S": "soon"},
        },
    )

    def update(expression: str, values: dict[str, Any]) -> dict[str, Any]:
        # Only the names and values the expression uses (DynamoDB refuses others).
        used = {k: v for k, v in values.items() if k in expression}
        names = {"ExpressionAttributeNames": {"#m": "m"}} if "#m" in expression else {}
        return dynamodb.update_item(
            TableName="meaning",
            Key=key,
            UpdateExpression=expression,
            ExpressionAttributeValues=used,
            ReturnValues="ALL_NEW",
            **names,
        )["Attributes"]

    # When every kind of action and function is applied, twice (the second use of a text too)
    for _ in range(2):
        item = update(
            "SET #m.deep.x = :new, #m.a = #m.a + :one, l = list_append(l, :more),"
            " fresh = if_not_exists(fresh, :start), n = n - :one"
            " ADD tags :tag REMOVE gone",
            {
                ":new": {"S": "new"},
                ":one": {"N": "1"},
                ":more": {"L": [{"S": "next"}]},
                ":start": {"N": "0"},
                ":tag": {"SS": ["c"]},
            },
        )

    # Then each took effect as DynamoDB's rules say
    assert item["m"] == {"M": {"a": {"N": "3"}, "deep": {"M": {"x": {"S": "new"}}}}}
    assert item["l"] == {"L": [{"S": "first"}, {"S": "next"}, {"S": "next"}]}
    assert item["fresh"] == {"N": "0"} and item["n"] == {"N": "8"}
    assert sorted(item["tags"]["SS"]) == ["a", "b", "c"] and "gone" not in item

    # And the refusals of the validation stay, each with its reason, every time
    refused = {
        "SET id = :v": "key",  # a key attribute
        "SET n = :v, n = :w": "overlap",  # two actions on one path
        "SET nowhere.deeper = :v": "document path",  # a path through a missing map
        "ADD #m :v": "operand",  # ADD to a map
        "SET n = :v, other = :missing": ":missing",  # a value not given
    }
    for _ in range(2):
        for expression, reason in refused.items():
            try:
                update(expression, {":v": {"N": "1"}, ":w": {"N": "2"}})
                raise AssertionError(f"{expression!r} was applied")
            except ClientError as error:
                assert error.response["Error"]["Code"] == "ValidationException", expression
                assert reason in error.response["Error"]["Message"], (expression, error)
    assert dynamodb.get_item(TableName="meaning", Key=key)["Item"] == item


def test_an_item_over_the_size_limit_is_refused_and_one_under_it_kept(
    aws_endpoint: str,
) -> None:
    # Given a table
    from botocore.exceptions import ClientError

    dynamodb = _table(aws_endpoint, "sizes")

    def item(n: int, size: int) -> dict[str, Any]:
        # Forty attributes, so the limit holds for the whole item, not one attribute.
        part = size // 40
        return {"id": {"N": str(n)}} | {f"a{i:02}": {"S": "x" * part} for i in range(40)}

    # When one item under DynamoDB's 400 KB is written, and one over it
    dynamodb.put_item(TableName="sizes", Item=item(1, 390_000))
    try:
        dynamodb.put_item(TableName="sizes", Item=item(2, 420_000))
        raise AssertionError("an item over 400 KB was written")
    except ClientError as error:
        refusal = error.response["Error"]

    # Then the first is kept whole and the second refused, as DynamoDB says
    assert dynamodb.get_item(TableName="sizes", Key={"id": {"N": "1"}})["Item"] == item(1, 390_000)
    assert refusal["Code"] == "ValidationException"
    assert "Item size has exceeded the maximum allowed size" in refusal["Message"]
    assert "Item" not in dynamodb.get_item(TableName="sizes", Key={"id": {"N": "2"}})


def _streamed(endpoint: str, name: str) -> tuple[Any, Any]:
    """A new table `name` (`_table`) with a stream of new and old images; a client that writes
    it and one that reads its stream (`_records`)."""
    images = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    dynamodb = _table(endpoint, name, StreamSpecification=images)
    return dynamodb, _client("dynamodbstreams", endpoint)


def _records(dynamodb: Any, streams: Any, name: str) -> list[Any]:
    """Every record of the table's stream so far."""
    arn = dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    found: list[Any] = streams.get_records(ShardIterator=iterator)["Records"]
    return found


def test_a_cancelled_transaction_leaves_no_record_in_the_stream(aws_endpoint: str) -> None:
    import pytest
    from botocore.exceptions import ClientError

    dynamodb, streams = _streamed(aws_endpoint, "streamed")
    written = {
        "Update": {
            "TableName": "streamed",
            "Key": {"id": {"N": "1"}},
            "UpdateExpression": "SET v = :v",
            "ExpressionAttributeValues": {":v": {"N": "1"}},
        }
    }
    refused = {
        "ConditionCheck": {
            "TableName": "streamed",
            "Key": {"id": {"N": "2"}},
            "ConditionExpression": "attribute_exists(id)",
        }
    }
    cancelled = {"Update": written["Update"] | {"ExpressionAttributeValues": {":v": {"N": "9"}}}}
    with pytest.raises(ClientError, match="TransactionCanceled"):
        dynamodb.transact_write_items(TransactItems=[cancelled, refused])
    dynamodb.transact_write_items(TransactItems=[written])
    records = _records(dynamodb, streams, "streamed")
    values = [r["dynamodb"]["NewImage"].get("v") for r in records]
    assert {"N": "9"} not in values and values[-1] == {"N": "1"}


def test_a_streams_records_read_back_as_written(aws_endpoint: str) -> None:
    # Repair 14 writes GetRecords' answer as JSON as it is: every kind of value, both images
    # and the record's time read back as botocore reads AWS's.
    from datetime import datetime

    dynamodb, streams = _streamed(aws_endpoint, "stream_kinds")
    item = {
        "id": {"N": "1"},
        "n": {"N": "12.5"},
        "b": {"B": b"\x00\xffbytes"},
        "t": {"BOOL": True},
        "z": {"NULL": True},
        "l": {"L": [{"S": "x"}, {"N": "1"}]},
        "m": {"M": {"inner": {"SS": ["p", "q"]}}},
        "bs": {"BS": [b"\x01", b"\x02"]},
    }
    dynamodb.put_item(TableName="stream_kinds", Item=item)
    dynamodb.put_item(TableName="stream_kinds", Item=item | {"n": {"N": "13"}})
    first, second = _records(dynamodb, streams, "stream_kinds")
    assert (first["eventName"], second["eventName"]) == ("INSERT", "MODIFY")
    assert first["dynamodb"]["NewImage"] == item == second["dynamodb"]["OldImage"]
    assert second["dynamodb"]["NewImage"]["n"] == {"N": "13"}
    assert isinstance(first["dynamodb"]["ApproximateCreationDateTime"], datetime)
    assert int(second["dynamodb"]["SequenceNumber"]) > int(first["dynamodb"]["SequenceNumber"])


def test_an_sdk_call_after_call_shares_one_connection(aws_endpoint: str) -> None:
    # DynamoDB and SQS calls answered on the connection the first one opened (each call no
    # longer costs a connection and a server thread); a body sent in chunks is still read.
    import http.client

    host, port = aws_endpoint.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    json_call = {"Content-Type": "application/x-amz-json-1.0"}
    sockets = []
    for target in ("DynamoDB_20120810.ListTables", "AmazonSQS.ListQueues") * 2:
        connection.request("POST", "/", body="{}", headers={"X-Amz-Target": target, **json_call})
        answer = connection.getresponse()
        assert answer.status == 200, answer.read()
        assert answer.getheader("Connection") != "close"
        assert isinstance(json.loads(answer.read()), dict)
        sockets.append(connection.sock)
    assert sockets[0] is not None and all(s is sockets[0] for s in sockets)
    chunks = iter([b"{", b"}"])
    headers = {"X-Amz-Target": "DynamoDB_20120810.ListTables", **json_call}
    connection.request("POST", "/", body=chunks, headers=headers, encode_chunked=True)
    answer = connection.getresponse()
    assert answer.status == 200 and "TableNames" in json.loads(answer.read())
    # A HEAD is answered without a body, whatever its target: the next call is read as sent.
    connection.request("HEAD", "/", body="{}", headers=headers)
    assert connection.getresponse().read() == b""
    connection.request("POST", "/", body="{}", headers=headers)
    assert "TableNames" in json.loads(connection.getresponse().read())
    connection.close()


def test_a_stopped_endpoint_ends_the_connections_it_kept_open() -> None:
    # A client of a stopped endpoint fails (it is not answered on its pooled connection), and
    # no thread of the endpoint is left waiting for its next call.
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    from pingpost_local.embedded_aws import start_aws_endpoint

    before = set(threading.enumerate())
    server, url = start_aws_endpoint()
    once = Config(retries={"max_attempts": 1, "mode": "standard"})
    clients = [
        boto3.client(
            service,
            endpoint_url=url,
            config=once,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        for service in ("dynamodb", "sqs")
    ]
    assert "TableNames" in clients[0].list_tables() and clients[1].list_queues()
    server.stop()
    with pytest.raises((EndpointConnectionError, ConnectionClosedError)):
        clients[0].list_tables()
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=5)
        assert not thread.is_alive(), thread.name

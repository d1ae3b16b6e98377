"""Create a SAM template's DynamoDB tables and SQS queues on any AWS endpoint (the embedded one
locally), in the order their references need, reusing those that exist."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, cast

from botocore.exceptions import ClientError

from pingpost_local.template import (
    QUEUE_TYPE,
    SUB_VARIABLE,
    TABLE_TYPE,
    Resolver,
    parameter_values,
    to_bool,
    to_text,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PointInTimeRecoverySpecificationTypeDef
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

_QUEUE_SCALAR_ATTRIBUTES: Final = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)
_QUEUE_JSON_ATTRIBUTES: Final = ("RedrivePolicy", "RedriveAllowPolicy")
_MISSING_QUEUE_CODES: Final = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
)


def _references(value: Any) -> set[str]:
    """Logical ids a value points at through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                found.add(argument)
            elif key == "Fn::GetAtt":
                found.add(argument.partition(".")[0] if isinstance(argument, str) else argument[0])
            elif key == "Fn::Sub":
                text, variables = argument if isinstance(argument, list) else (argument, {})
                names = {match.group(1) for match in SUB_VARIABLE.finditer(str(text))}
                found |= {name.partition(".")[0] for name in names if name not in variables}
                found |= _references(variables)
            else:
                found |= _references(argument)
    return found


def _creation_order(resources: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Logical ids ordered so that whatever a resource references is created before it."""
    pending = {
        logical_id: _references(resource.get("Properties") or {}) & set(resources)
        for logical_id, resource in resources.items()
    }
    order: list[str] = []
    while pending:
        ready = [logical_id for logical_id, needs in pending.items() if needs <= set(order)]
        if not ready:
            raise ValueError(f"circular references between {sorted(pending)}")
        order.extend(ready)
        for logical_id in ready:
            del pending[logical_id]
    return order


def _throughput(spec: Mapping[str, Any]) -> dict[str, int]:
    """ProvisionedThroughput with the integers the API wants (templates may hold strings)."""
    return {
        "ReadCapacityUnits": int(spec["ReadCapacityUnits"]),
        "WriteCapacityUnits": int(spec["WriteCapacityUnits"]),
    }


def _index_request(index: Mapping[str, Any], provisioned: bool) -> dict[str, Any]:
    """A GSI/LSI definition as CreateTable takes it (CloudFormation-only keys dropped)."""
    request: dict[str, Any] = {
        "IndexName": index["IndexName"],
        "KeySchema": index["KeySchema"],
        "Projection": index["Projection"],
    }
    if provisioned and "ProvisionedThroughput" in index:
        request["ProvisionedThroughput"] = _throughput(index["ProvisionedThroughput"])
    return request


def table_request(name: str, props: Mapping[str, Any]) -> dict[str, Any]:
    """CreateTable arguments for an AWS::DynamoDB::Table's resolved Properties."""
    billing = str(props.get("BillingMode", "PROVISIONED"))
    provisioned = billing == "PROVISIONED"
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": billing,
    }
    if provisioned:
        request["ProvisionedThroughput"] = _throughput(
            props.get("ProvisionedThroughput") or {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        )
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if props.get(key):
            # LSIs never carry their own throughput; only GSIs do.
            request[key] = [
                _index_request(index, provisioned and key == "GlobalSecondaryIndexes")
                for index in props[key]
            ]
    sse = props.get("SSESpecification")
    if sse:
        # CloudFormation says SSEEnabled where the API says Enabled.
        request["SSESpecification"] = {"Enabled": to_bool(sse.get("SSEEnabled"))} | {
            key: sse[key] for key in ("SSEType", "KMSMasterKeyId") if key in sse
        }
    stream = props.get("StreamSpecification")
    if stream:
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    if "TableClass" in props:
        request["TableClass"] = props["TableClass"]
    if "DeletionProtectionEnabled" in props:
        request["DeletionProtectionEnabled"] = to_bool(props["DeletionProtectionEnabled"])
    if props.get("Tags"):
        request["Tags"] = [
            {"Key": tag["Key"], "Value": to_text(tag["Value"])} for tag in props["Tags"]
        ]
    return request


def _create_table(
    client: DynamoDBClient, logical_id: str, props: Mapping[str, Any], physical: dict[str, str]
) -> None:
    """Create (or reuse) one table, then apply TTL and point-in-time recovery."""
    name = str(props.get("TableName") or logical_id)
    try:
        client.describe_table(TableName=name)
    except client.exceptions.ResourceNotFoundException:
        client.create_table(**table_request(name, props))
    # TTL and PITR updates are refused until the table is ACTIVE on real DynamoDB.
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    table = client.describe_table(TableName=name)["Table"]

    ttl = props.get("TimeToLiveSpecification")
    if ttl and to_bool(ttl.get("Enabled")):
        current = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        already = current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and current.get(
            "AttributeName"
        ) == str(ttl["AttributeName"])
        # Enabling TTL a second time is a ValidationException, so only do it once.
        if not already:
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={
                    "Enabled": True,
                    "AttributeName": str(ttl["AttributeName"]),
                },
            )

    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr:
        spec: PointInTimeRecoverySpecificationTypeDef = {
            "PointInTimeRecoveryEnabled": to_bool(pitr.get("PointInTimeRecoveryEnabled"))
        }
        if "RecoveryPeriodInDays" in pitr:
            spec["RecoveryPeriodInDays"] = int(pitr["RecoveryPeriodInDays"])
        client.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification=spec)

    physical[logical_id] = name
    physical[f"{logical_id}.Arn"] = table["TableArn"]
    if table.get("LatestStreamArn"):
        physical[f"{logical_id}.StreamArn"] = table["LatestStreamArn"]


def queue_attributes(props: Mapping[str, Any]) -> dict[str, str]:
    """CreateQueue attributes for an AWS::SQS::Queue's resolved Properties (all strings)."""
    attributes = {
        key: to_text(props[key]) for key in _QUEUE_SCALAR_ATTRIBUTES if props.get(key) is not None
    }
    # SQS refuses FifoQueue on standard queues, so it is only ever sent as "true".
    if to_bool(props.get("FifoQueue", False)):
        attributes["FifoQueue"] = "true"
    for key in _QUEUE_JSON_ATTRIBUTES:
        value = props.get(key)
        if value is not None:
            attributes[key] = value if isinstance(value, str) else json.dumps(value)
    return attributes


def _create_queue(
    client: SQSClient, logical_id: str, props: Mapping[str, Any], physical: dict[str, str]
) -> None:
    """Create (or reuse and re-attribute) one queue and record its URL, name and ARN."""
    fifo = to_bool(props.get("FifoQueue", False))
    name = str(props.get("QueueName") or (f"{logical_id}.fifo" if fifo else logical_id))
    # The attribute names come from CloudFormation's, which are the API's own.
    attributes = cast("dict[QueueAttributeNameType, str]", queue_attributes(props))
    try:
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in _MISSING_QUEUE_CODES:
            raise
        tags = {tag["Key"]: to_text(tag["Value"]) for tag in props.get("Tags") or []}
        url = client.create_queue(QueueName=name, Attributes=attributes, tags=tags)["QueueUrl"]
    else:
        # An existing queue takes the template's settings; FifoQueue can't change after creation.
        changeable: dict[QueueAttributeNameType, str] = {
            key: value for key, value in attributes.items() if key != "FifoQueue"
        }
        if changeable:
            client.set_queue_attributes(QueueUrl=url, Attributes=changeable)
    found = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    physical[logical_id] = url
    physical[f"{logical_id}.Arn"] = found["Attributes"]["QueueArn"]
    physical[f"{logical_id}.QueueName"] = name
    physical[f"{logical_id}.QueueUrl"] = url


def create_resources(
    template: Mapping[str, Any],
    dynamodb: DynamoDBClient,
    sqs: SQSClient,
    parameters: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Create every DynamoDB table and SQS queue of the template; reuse those that exist.

    Returns logical id -> physical id (table name, queue URL) plus "Id.Attr" -> GetAtt value.
    """
    values = parameter_values(template) if parameters is None else dict(parameters)
    resources: Mapping[str, Mapping[str, Any]] = template.get("Resources") or {}
    wanted = {
        logical_id: resource
        for logical_id, resource in resources.items()
        if resource.get("Type") in (TABLE_TYPE, QUEUE_TYPE)
    }
    physical: dict[str, str] = {}
    for logical_id in _creation_order(wanted):
        resource = wanted[logical_id]
        resolver = Resolver(physical, values, template)
        if "Condition" in resource and not resolver.condition(str(resource["Condition"])):
            continue
        props = resolver.resolve(resource.get("Properties") or {})
        if resource["Type"] == TABLE_TYPE:
            _create_table(dynamodb, logical_id, props, physical)
        else:
            _create_queue(sqs, logical_id, props, physical)
    return physical

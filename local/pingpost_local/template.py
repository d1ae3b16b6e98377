"""Read a SAM template, resolve its intrinsics and create its tables and queues on any AWS endpoint.

Only what the local runner needs: DynamoDB tables, SQS queues, HttpApi routes, function settings.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import yaml  # type: ignore[import-untyped]
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PointInTimeRecoverySpecificationTypeDef
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

ACCOUNT_ID: Final = "123456789012"
STACK_NAME: Final = "pingpost-local"
TABLE_TYPE: Final = "AWS::DynamoDB::Table"
QUEUE_TYPE: Final = "AWS::SQS::Queue"
FUNCTION_TYPE: Final = "AWS::Serverless::Function"
HTTP_API_TYPE: Final = "AWS::Serverless::HttpApi"
DEFAULT_ROUTE: Final = "$default"

# Short-form tags whose long form is simply "Fn::<name>" around the node's value.
_FN_TAGS: Final = (
    "And",
    "Base64",
    "Cidr",
    "Contains",
    "Equals",
    "FindInMap",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
)
_SUB_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")
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
# The keys SAM accepts in an HttpApi's CorsConfiguration.
CORS_KEYS: Final = (
    "AllowOrigins",
    "AllowHeaders",
    "AllowMethods",
    "ExposeHeaders",
    "MaxAge",
    "AllowCredentials",
)


class TemplateLoader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that reads CloudFormation short-form tags into their long forms."""


# CloudFormation keeps unquoted dates such as 2010-09-09 as strings; YAML 1.1 would make dates.
TemplateLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _node_value(loader: Any, node: Any) -> Any:
    """Construct a tagged node's value whatever its kind (scalar, sequence, mapping)."""
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _fn_constructor(name: str) -> Any:
    """Build a constructor turning `!Name value` into {"Fn::Name": value}."""

    def construct(loader: Any, node: Any) -> dict[str, Any]:
        return {f"Fn::{name}": _node_value(loader, node)}

    return construct


def _construct_ref(loader: Any, node: Any) -> dict[str, Any]:
    """!Ref Name -> {"Ref": "Name"}."""
    return {"Ref": _node_value(loader, node)}


def _construct_condition(loader: Any, node: Any) -> dict[str, Any]:
    """!Condition Name -> {"Condition": "Name"}."""
    return {"Condition": _node_value(loader, node)}


def _construct_get_att(loader: Any, node: Any) -> dict[str, Any]:
    """!GetAtt A.B (or [A, B]) -> {"Fn::GetAtt": ["A", "B"]}."""
    value = _node_value(loader, node)
    if isinstance(value, str):
        # Only the first dot separates the resource; attributes may contain dots (Endpoint.Port).
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {"Fn::GetAtt": value}


TemplateLoader.add_constructor("!Ref", _construct_ref)
TemplateLoader.add_constructor("!Condition", _construct_condition)
TemplateLoader.add_constructor("!GetAtt", _construct_get_att)
for _name in _FN_TAGS:
    TemplateLoader.add_constructor(f"!{_name}", _fn_constructor(_name))


def load_template(path: Path) -> dict[str, Any]:
    """Parse a YAML (or JSON) template, short-form intrinsics turned into long forms."""
    loader = TemplateLoader(path.read_text(encoding="utf-8"))
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a template must be a mapping at the top level")
    return data


class _NoValue:
    """Marker for AWS::NoValue: the enclosing key or list item disappears."""


NO_VALUE: Final = _NoValue()


def region() -> str:
    """The region the runner pretends to be in (the SDK's own settings, else us-east-1)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def pseudo_parameters() -> dict[str, str]:
    """Values for AWS::Region, AWS::AccountId and the other pseudo parameters."""
    here = region()
    return {
        "AWS::Region": here,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": STACK_NAME,
        "AWS::StackId": (
            f"arn:aws:cloudformation:{here}:{ACCOUNT_ID}:stack/{STACK_NAME}/"
            "00000000-0000-0000-0000-000000000000"
        ),
    }


def to_text(value: Any) -> str:
    """Render a resolved template value the way CloudFormation stringifies it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return ",".join(to_text(item) for item in value)
    return json.dumps(value, separators=(",", ":"))


def _to_bool(value: Any) -> bool:
    """CloudFormation booleans may arrive as YAML booleans or as "true"/"false" strings."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def parameter_values(
    template: Mapping[str, Any], overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each template parameter's value: the override if given, else its Default."""
    values: dict[str, str] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        if overrides and name in overrides:
            values[name] = overrides[name]
        elif isinstance(spec, Mapping) and "Default" in spec:
            values[name] = to_text(spec["Default"])
    return values


class _Resolver:
    """Evaluates intrinsic functions against created resources and parameter values."""

    def __init__(
        self,
        physical: Mapping[str, str],
        parameters: Mapping[str, str],
        template: Mapping[str, Any] | None,
    ) -> None:
        self.physical = physical
        self.parameters = parameters
        self.template = template
        self.pseudo = pseudo_parameters()
        self._conditions: dict[str, bool] = {}

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic inside value, dropping AWS::NoValue entries."""
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, argument),) = value.items()
                if key == "Ref" or key.startswith("Fn::"):
                    return self._intrinsic(key, argument)
            resolved = {key: self.resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not NO_VALUE}
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        return value

    def _intrinsic(self, key: str, argument: Any) -> Any:
        """Dispatch one intrinsic function."""
        if key == "Ref":
            return self.ref(str(argument))
        name = key.removeprefix("Fn::")
        handler = getattr(self, f"_fn_{name.lower()}", None)
        if handler is None:
            raise ValueError(f"{key} is not supported by the local runner")
        return handler(argument)

    def ref(self, name: str) -> Any:
        """Ref: a parameter's value, a pseudo parameter, or a resource's physical id."""
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            if self._is_list_parameter(name):
                # A list parameter's Ref is its comma-separated members, each space trimmed.
                return [member.strip() for member in self.parameters[name].split(",")]
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.physical:
            return self.physical[name]
        resources = (self.template or {}).get("Resources") or {}
        if self.template is not None and name not in resources:
            raise KeyError(f"Ref to unknown parameter or resource {name!r}")
        # A resource the runner does not create (API, layer, function) stands in as its own id.
        return name

    def _is_list_parameter(self, name: str) -> bool:
        """Whether the template declares the parameter as CommaDelimitedList or List<...>."""
        spec = ((self.template or {}).get("Parameters") or {}).get(name)
        kind = str(spec.get("Type", "")) if isinstance(spec, Mapping) else ""
        return kind == "CommaDelimitedList" or kind.startswith("List<")

    def get_att(self, resource: str, attribute: str) -> str:
        """GetAtt from what create_resources recorded, deriving the derivable."""
        recorded = self.physical.get(f"{resource}.{attribute}")
        if recorded is not None:
            return recorded
        physical = self.physical.get(resource)
        if physical is not None and physical.startswith(("http://", "https://")):
            if attribute == "QueueUrl":
                return physical
            if attribute == "QueueName":
                return physical.rstrip("/").rsplit("/", 1)[-1]
        raise KeyError(f"GetAtt {resource}.{attribute} is not known locally")

    def _fn_getatt(self, argument: Any) -> str:
        if isinstance(argument, str):
            resource, _, attribute = argument.partition(".")
        else:
            resource, attribute = (to_text(self.resolve(part)) for part in argument)
        return self.get_att(resource, attribute)

    def _fn_sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], self.resolve(argument[1])
        else:
            text, variables = argument, {}

        def substitute(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                # ${!Literal} is CloudFormation's escape for a literal ${Literal}.
                return "${" + expression[1:] + "}"
            if expression in variables:
                return to_text(variables[expression])
            if "." in expression and not expression.startswith("AWS::"):
                resource, _, attribute = expression.partition(".")
                return self.get_att(resource, attribute)
            return to_text(self.ref(expression))

        return _SUB_VARIABLE.sub(substitute, str(text))

    def _fn_join(self, argument: Any) -> str:
        delimiter, items = argument[0], self.resolve(argument[1])
        return str(delimiter).join(to_text(item) for item in items)

    def _fn_select(self, argument: Any) -> Any:
        index, items = self.resolve(argument[0]), self.resolve(argument[1])
        return items[int(index)]

    def _fn_split(self, argument: Any) -> list[str]:
        delimiter, text = argument[0], self.resolve(argument[1])
        return to_text(text).split(str(delimiter))

    def _fn_base64(self, argument: Any) -> str:
        return base64.b64encode(to_text(self.resolve(argument)).encode()).decode("ascii")

    def _fn_getazs(self, argument: Any) -> list[str]:
        here = to_text(self.resolve(argument)) or self.pseudo["AWS::Region"]
        return [f"{here}{zone}" for zone in "abc"]

    def _fn_findinmap(self, argument: Any) -> Any:
        mapping, top, second = (to_text(self.resolve(part)) for part in argument[:3])
        return self._section("Mappings")[mapping][top][second]

    def _fn_if(self, argument: Any) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(str(name)) else when_false)

    def _fn_equals(self, argument: Any) -> bool:
        left, right = (to_text(self.resolve(part)) for part in argument)
        return left == right

    def _fn_not(self, argument: Any) -> bool:
        return not self._truth(argument[0])

    def _fn_and(self, argument: Any) -> bool:
        return all(self._truth(item) for item in argument)

    def _fn_or(self, argument: Any) -> bool:
        return any(self._truth(item) for item in argument)

    def _truth(self, value: Any) -> bool:
        """A condition operand: {"Condition": name} or an intrinsic yielding a boolean."""
        if isinstance(value, dict) and set(value) == {"Condition"}:
            return self.condition(str(value["Condition"]))
        return _to_bool(self.resolve(value))

    def condition(self, name: str) -> bool:
        """Evaluate (once) a named entry of the template's Conditions."""
        if name not in self._conditions:
            self._conditions[name] = self._truth(self._section("Conditions")[name])
        return self._conditions[name]

    def _section(self, section: str) -> Mapping[str, Any]:
        """A top-level template section (Mappings, Conditions)."""
        if self.template is None:
            raise ValueError(f"resolving against {section} needs the template")
        found: Mapping[str, Any] = self.template.get(section) or {}
        return found


def resolve(
    value: Any,
    physical: Mapping[str, str],
    parameters: Mapping[str, str],
    *,
    template: Mapping[str, Any] | None = None,
) -> Any:
    """Resolve Ref, Fn::GetAtt, Fn::Sub (and Join, Select, Split, If...) inside value.

    physical maps logical ids to physical ids and "Id.Attr" to GetAtt values (see create_resources).
    """
    return _Resolver(physical, parameters, template).resolve(value)


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
                names = {match.group(1) for match in _SUB_VARIABLE.finditer(str(text))}
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
        request["SSESpecification"] = {"Enabled": _to_bool(sse.get("SSEEnabled"))} | {
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
        request["DeletionProtectionEnabled"] = _to_bool(props["DeletionProtectionEnabled"])
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
    if ttl and _to_bool(ttl.get("Enabled")):
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
            "PointInTimeRecoveryEnabled": _to_bool(pitr.get("PointInTimeRecoveryEnabled"))
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
    if _to_bool(props.get("FifoQueue", False)):
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
    fifo = _to_bool(props.get("FifoQueue", False))
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
        resolver = _Resolver(physical, values, template)
        if "Condition" in resource and not resolver.condition(str(resource["Condition"])):
            continue
        props = resolver.resolve(resource.get("Properties") or {})
        if resource["Type"] == TABLE_TYPE:
            _create_table(dynamodb, logical_id, props, physical)
        else:
            _create_queue(sqs, logical_id, props, physical)
    return physical


@dataclass(frozen=True, slots=True)
class Route:
    """One HttpApi event of a function: METHOD (or ANY) and path, and the code to run."""

    method: str
    path: str
    function_id: str
    code_uri: str
    handler: str

    @property
    def route_key(self) -> str:
        """The routeKey API Gateway puts in the event ("POST /api.php" or "$default")."""
        return DEFAULT_ROUTE if self.path == DEFAULT_ROUTE else f"{self.method} {self.path}"


def _functions(template: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """Every AWS::Serverless::Function as (logical id, resource)."""
    for logical_id, resource in (template.get("Resources") or {}).items():
        if isinstance(resource, Mapping) and resource.get("Type") == FUNCTION_TYPE:
            yield logical_id, resource


def function_properties(template: Mapping[str, Any], function_id: str) -> dict[str, Any]:
    """A function's Properties with Globals.Function filled in (shallow, as SAM merges scalars)."""
    resource = (template.get("Resources") or {}).get(function_id)
    if not isinstance(resource, Mapping) or resource.get("Type") != FUNCTION_TYPE:
        raise KeyError(f"{function_id!r} is not an AWS::Serverless::Function")
    globals_ = ((template.get("Globals") or {}).get("Function")) or {}
    return {**globals_, **(resource.get("Properties") or {})}


def http_routes(template: Mapping[str, Any]) -> list[Route]:
    """The HttpApi routes of every function, in template order."""
    routes: list[Route] = []
    for function_id, _resource in _functions(template):
        props = function_properties(template, function_id)
        code_uri, handler = props.get("CodeUri"), props.get("Handler")
        events: Mapping[str, Any] = props.get("Events") or {}
        for event in events.values():
            if event.get("Type") != "HttpApi":
                continue
            if not isinstance(code_uri, str) or not isinstance(handler, str):
                raise ValueError(f"{function_id}: only a local CodeUri directory can run locally")
            event_props = event.get("Properties") or {}
            path, method = event_props.get("Path"), event_props.get("Method")
            if path is None and method is None:
                # An HttpApi event without Path and Method is the API's $default route.
                routes.append(Route("ANY", DEFAULT_ROUTE, function_id, code_uri, handler))
                continue
            method_text = str(method or "ANY").upper()
            routes.append(Route(method_text, str(path or "/"), function_id, code_uri, handler))
    return routes


def http_api_cors(
    template: Mapping[str, Any],
    physical: Mapping[str, str],
    parameters: Mapping[str, str],
) -> dict[str, Any] | None:
    """The HttpApi's CorsConfiguration with its intrinsics resolved; None when it has none.

    The API resource's own setting, else Globals.HttpApi's (SAM's implicit API); `true` is SAM's
    shorthand for every origin, {"AllowOrigins": ["*"]}.
    """
    resolver = _Resolver(physical, parameters, template)
    apis = [
        resource
        for resource in (template.get("Resources") or {}).values()
        if isinstance(resource, Mapping)
        and resource.get("Type") == HTTP_API_TYPE
        and ("Condition" not in resource or resolver.condition(str(resource["Condition"])))
    ]
    default = ((template.get("Globals") or {}).get("HttpApi") or {}).get("CorsConfiguration")
    settings = [(api.get("Properties") or {}).get("CorsConfiguration", default) for api in apis]
    configured = [setting for setting in settings or [default] if setting is not None]
    if len(configured) > 1:
        raise ValueError("the local runner serves one HttpApi: only one may have CORS")
    if not configured:
        return None
    value = resolver.resolve(configured[0])
    if value is NO_VALUE or value is None or value is False:
        return None
    if value is True:
        return {"AllowOrigins": ["*"]}
    if not isinstance(value, dict):
        raise ValueError(f"CorsConfiguration must be true or a mapping, not {value!r}")
    unknown = sorted(set(value) - set(CORS_KEYS))
    if unknown:
        raise ValueError(f"CorsConfiguration has unknown keys {unknown}; SAM takes {CORS_KEYS}")
    return value


def function_ids(template: Mapping[str, Any]) -> list[str]:
    """Logical ids of every AWS::Serverless::Function."""
    return [function_id for function_id, _resource in _functions(template)]


def function_environment(
    template: Mapping[str, Any],
    function_id: str,
    physical: Mapping[str, str],
    parameters: Mapping[str, str],
) -> dict[str, str]:
    """Globals.Function.Environment.Variables merged with the function's own, as strings."""
    resource = (template.get("Resources") or {}).get(function_id) or {}
    globals_ = ((template.get("Globals") or {}).get("Function")) or {}
    merged = {
        **((globals_.get("Environment") or {}).get("Variables") or {}),
        **(((resource.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}),
    }
    resolved = resolve(merged, physical, parameters, template=template)
    return {name: to_text(value) for name, value in resolved.items()}

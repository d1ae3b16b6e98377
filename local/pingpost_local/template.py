"""Read a SAM template: its YAML tags, its parameters, and its intrinsic functions resolved.

The resolver is kept whole on purpose: `pingpost serve --template FILE` runs other templates
than ours, so it resolves every intrinsic a template's tables, queues, routes and function
settings may use (Ref, GetAtt, Sub, Join, Select, Split, Base64, GetAZs, FindInMap, If,
Equals, Not, And, Or; each tested), and names any other as not supported. Creating the tables
and queues is `pingpost_local.resources`.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml  # type: ignore[import-untyped]

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
SUB_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")
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


def to_bool(value: Any) -> bool:
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


class Resolver:
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

        return SUB_VARIABLE.sub(substitute, str(text))

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
        return to_bool(self.resolve(value))

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
    return Resolver(physical, parameters, template).resolve(value)


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
    resolver = Resolver(physical, parameters, template)
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

"""The local runner's template reading: short-form tags, intrinsic resolution, routes, env."""

import re
from pathlib import Path

import pytest

from pingpost_local.resources import queue_attributes, table_request
from pingpost_local.template import (
    Route,
    function_environment,
    http_api_cors,
    http_routes,
    load_template,
    parameter_values,
    resolve,
)

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"

TAGS_YAML = """
AWSTemplateFormatVersion: 2010-09-09
Resources:
  Thing:
    Properties:
      Ref: !Ref Other
      AttDot: !GetAtt Queue.Arn
      AttNested: !GetAtt Db.Endpoint.Address
      AttList: !GetAtt [Queue, QueueName]
      Sub: !Sub "${AWS::Region}-${Other}"
      SubList: !Sub ["${A}-x", {A: !Ref Other}]
      Join: !Join [",", [a, !Ref Other]]
      Select: !Select [1, [a, b]]
      If: !If [IsProd, 1, 2]
      Equals: !Equals [a, b]
      Not: !Not [!Condition IsProd]
      And: !And [!Condition IsProd, !Equals [a, a]]
      Or: !Or [!Condition IsProd, !Equals [a, a]]
      FindInMap: !FindInMap [Map, Top, Second]
      Split: !Split [",", "a,b"]
      Base64: !Base64 text
      ImportValue: !ImportValue Exported
      GetAZs: !GetAZs ""
      Condition: !Condition IsProd
"""


def test_short_form_tags_become_long_forms(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(TAGS_YAML, encoding="utf-8")
    template = load_template(path)
    props = template["Resources"]["Thing"]["Properties"]

    # CloudFormation keeps an unquoted version date as a string, not a date.
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    assert props["Ref"] == {"Ref": "Other"}
    assert props["AttDot"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert props["AttNested"] == {"Fn::GetAtt": ["Db", "Endpoint.Address"]}
    assert props["AttList"] == {"Fn::GetAtt": ["Queue", "QueueName"]}
    assert props["Sub"] == {"Fn::Sub": "${AWS::Region}-${Other}"}
    assert props["SubList"] == {"Fn::Sub": ["${A}-x", {"A": {"Ref": "Other"}}]}
    assert props["Join"] == {"Fn::Join": [",", ["a", {"Ref": "Other"}]]}
    assert props["Select"] == {"Fn::Select": [1, ["a", "b"]]}
    assert props["If"] == {"Fn::If": ["IsProd", 1, 2]}
    assert props["Equals"] == {"Fn::Equals": ["a", "b"]}
    assert props["Not"] == {"Fn::Not": [{"Condition": "IsProd"}]}
    assert props["And"] == {"Fn::And": [{"Condition": "IsProd"}, {"Fn::Equals": ["a", "a"]}]}
    assert props["Or"] == {"Fn::Or": [{"Condition": "IsProd"}, {"Fn::Equals": ["a", "a"]}]}
    assert props["FindInMap"] == {"Fn::FindInMap": ["Map", "Top", "Second"]}
    assert props["Split"] == {"Fn::Split": [",", "a,b"]}
    assert props["Base64"] == {"Fn::Base64": "text"}
    assert props["ImportValue"] == {"Fn::ImportValue": "Exported"}
    assert props["GetAZs"] == {"Fn::GetAZs": ""}
    assert props["Condition"] == {"Condition": "IsProd"}


PHYSICAL = {
    "LeadsTable": "LeadsTable",
    "LeadsTable.Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/LeadsTable",
    "DeliveryQueue": "http://127.0.0.1:1/123456789012/DeliveryQueue",
    "DeliveryQueue.Arn": "arn:aws:sqs:us-east-1:123456789012:DeliveryQueue",
}


def test_ref_resolves_parameters_resources_and_pseudo_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    parameters = {"PingTtlHours": "72"}
    assert resolve({"Ref": "PingTtlHours"}, PHYSICAL, parameters) == "72"
    assert resolve({"Ref": "LeadsTable"}, PHYSICAL, parameters) == "LeadsTable"
    assert resolve({"Ref": "DeliveryQueue"}, PHYSICAL, parameters) == PHYSICAL["DeliveryQueue"]
    assert resolve({"Ref": "AWS::Region"}, PHYSICAL, parameters) == "eu-west-1"
    assert resolve({"Ref": "AWS::AccountId"}, PHYSICAL, parameters) == "123456789012"
    # AWS::NoValue removes the key (or list item) it sits in.
    assert resolve({"A": {"Ref": "AWS::NoValue"}, "B": [1, {"Ref": "AWS::NoValue"}]}, {}, {}) == {
        "B": [1]
    }


def test_get_att_reads_recorded_values_and_derives_queue_name_and_url() -> None:
    assert (
        resolve({"Fn::GetAtt": ["LeadsTable", "Arn"]}, PHYSICAL, {}) == PHYSICAL["LeadsTable.Arn"]
    )
    assert (
        resolve({"Fn::GetAtt": "DeliveryQueue.Arn"}, PHYSICAL, {}) == PHYSICAL["DeliveryQueue.Arn"]
    )
    assert resolve({"Fn::GetAtt": ["DeliveryQueue", "QueueName"]}, PHYSICAL, {}) == "DeliveryQueue"
    assert (
        resolve({"Fn::GetAtt": ["DeliveryQueue", "QueueUrl"]}, PHYSICAL, {})
        == PHYSICAL["DeliveryQueue"]
    )
    with pytest.raises(KeyError):
        resolve({"Fn::GetAtt": ["LeadsTable", "StreamArn"]}, PHYSICAL, {})


def test_sub_join_select_split_if(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    parameters = {"Stage": "dev"}
    assert (
        resolve(
            {"Fn::Sub": "${LeadsTable}/${LeadsTable.Arn}/${AWS::Region}/${Stage}"},
            PHYSICAL,
            parameters,
        )
        == f"LeadsTable/{PHYSICAL['LeadsTable.Arn']}/us-west-2/dev"
    )
    assert resolve({"Fn::Sub": "${!Literal}-${Stage}"}, {}, parameters) == "${Literal}-dev"
    assert (
        resolve(
            {"Fn::Sub": ["${Name}:${Stage}", {"Name": {"Ref": "LeadsTable"}}]}, PHYSICAL, parameters
        )
        == "LeadsTable:dev"
    )
    assert resolve({"Fn::Join": ["-", ["a", {"Ref": "Stage"}, 3]]}, {}, parameters) == "a-dev-3"
    assert resolve({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}, {}, {}) == "y"
    template = {
        "Resources": {},
        "Conditions": {"IsDev": {"Fn::Equals": [{"Ref": "Stage"}, "dev"]}},
        "Mappings": {"Sizes": {"dev": {"Memory": 128}}},
    }
    assert resolve({"Fn::If": ["IsDev", "yes", "no"]}, {}, parameters, template=template) == "yes"
    assert (
        resolve(
            {"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Memory"]},
            {},
            parameters,
            template=template,
        )
        == 128
    )


def test_base64_getazs_and_or_not_and_an_unsupported_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert resolve({"Fn::Base64": {"Fn::Sub": "${Stage}"}}, {}, {"Stage": "dev"}) == "ZGV2"
    assert resolve({"Fn::GetAZs": ""}, {}, {}) == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    template = {
        "Resources": {},
        "Conditions": {
            "IsDev": {"Fn::Equals": [{"Ref": "Stage"}, "dev"]},
            "Big": {"Fn::Equals": [{"Ref": "Size"}, "big"]},
            "Both": {"Fn::And": [{"Condition": "IsDev"}, {"Condition": "Big"}]},
            "Either": {"Fn::Or": [{"Condition": "IsDev"}, {"Condition": "Big"}]},
            "NotDev": {"Fn::Not": [{"Condition": "IsDev"}]},
        },
    }
    values = {"Stage": "dev", "Size": "small"}
    told = {
        name: resolve({"Fn::If": [name, 1, 0]}, {}, values, template=template)
        for name in ("Both", "Either", "NotDev")
    }
    assert told == {"Both": 0, "Either": 1, "NotDev": 0}
    with pytest.raises(ValueError, match="Fn::Cidr is not supported by the local runner"):
        resolve({"Fn::Cidr": ["10.0.0.0/16", 2, 8]}, {}, {})


def test_parameter_values_take_defaults_as_strings() -> None:
    template = load_template(TEMPLATE)
    values = parameter_values(template)
    assert values["PingTtlHours"] == "72"
    assert parameter_values(template, {"PingTtlHours": "1"})["PingTtlHours"] == "1"


def test_routes_from_the_real_template() -> None:
    routes = http_routes(load_template(TEMPLATE))
    assert all(isinstance(route, Route) for route in routes)
    pairs = {(route.method, route.path) for route in routes}
    expected = {
        ("GET", "/api.php"),
        ("POST", "/api.php"),
        ("POST", "/apiXML.php"),
        ("GET", "/ping"),
        ("POST", "/ping"),
        ("GET", "/post"),
        ("POST", "/post"),
        ("GET", "/full"),
        ("POST", "/full"),
    }
    assert expected <= pairs
    by_key = {route.route_key: route for route in routes}
    assert by_key["POST /api.php"].function_id == "ApiFunction"
    assert by_key["POST /apiXML.php"].function_id == "ApiFunction"
    assert by_key["GET /ping"].function_id == "PingFunction"
    assert by_key["POST /post"].code_uri == "functions/post/"
    assert {route.handler for route in routes} == {"app.lambda_handler"}


def test_routes_normalise_method_case_and_any(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        """
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.handler
      Events:
        Lower: {Type: HttpApi, Properties: {Path: /a, Method: post}}
        Any: {Type: HttpApi, Properties: {Path: /b, Method: ANY}}
        Default: {Type: HttpApi}
        Queue: {Type: SQS, Properties: {Queue: arn}}
""",
        encoding="utf-8",
    )
    routes = http_routes(load_template(path))
    assert [route.route_key for route in routes] == ["POST /a", "ANY /b", "$default"]


def test_function_environment_merges_globals_and_resolves(tmp_path: Path) -> None:
    template = load_template(TEMPLATE)
    physical = dict(PHYSICAL)
    physical.update(
        VendorsTable="VendorsTable", PartnersTable="PartnersTable", CountersTable="CountersTable"
    )
    env = function_environment(template, "PostFunction", physical, parameter_values(template))
    assert env["LEADS_TABLE"] == "LeadsTable"
    assert env["DELIVERY_QUEUE_URL"] == PHYSICAL["DeliveryQueue"]
    assert env["PING_TTL_HOURS"] == "72"
    assert env["POWERTOOLS_SERVICE_NAME"] == "pingpost"
    assert all(isinstance(value, str) for value in env.values())

    path = tmp_path / "template.yaml"
    path.write_text(
        """
Globals:
  Function:
    Environment:
      Variables: {SHARED: global, OVERRIDDEN: global, FLAG: true}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables: {OVERRIDDEN: own, OWN: !Sub "${AWS::AccountId}"}
""",
        encoding="utf-8",
    )
    own = function_environment(load_template(path), "Fn", {}, {})
    assert own == {
        "SHARED": "global",
        "OVERRIDDEN": "own",
        "FLAG": "true",
        "OWN": "123456789012",
    }


def test_table_request_maps_cloudformation_names_to_the_api() -> None:
    request = table_request(
        "T",
        {
            "BillingMode": "PROVISIONED",
            "ProvisionedThroughput": {"ReadCapacityUnits": "2", "WriteCapacityUnits": 3},
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "SSESpecification": {"SSEEnabled": "true"},
            "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "g",
                    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                    "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
                    "ContributorInsightsSpecification": {"Enabled": True},
                }
            ],
        },
    )
    assert request["ProvisionedThroughput"] == {"ReadCapacityUnits": 2, "WriteCapacityUnits": 3}
    assert request["SSESpecification"] == {"Enabled": True}
    assert request["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert "ContributorInsightsSpecification" not in request["GlobalSecondaryIndexes"][0]


def test_queue_attributes_are_strings_with_json_redrive() -> None:
    attributes = queue_attributes(
        {
            "VisibilityTimeout": 180,
            "SqsManagedSseEnabled": True,
            "FifoQueue": False,
            "RedrivePolicy": {"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": 5},
        }
    )
    assert attributes == {
        "VisibilityTimeout": "180",
        "SqsManagedSseEnabled": "true",
        "RedrivePolicy": '{"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": 5}',
    }


# --- CORS of the HttpApi ---------------------------------------------------------------------


def test_a_comma_delimited_list_parameter_refs_as_its_trimmed_members() -> None:
    template = {
        "Parameters": {"Origins": {"Type": "CommaDelimitedList"}, "Name": {"Type": "String"}},
        "Resources": {},
    }
    parameters = {"Origins": "https://a.example, http://b.example:8080", "Name": "x,y"}
    assert resolve({"Ref": "Origins"}, {}, parameters, template=template) == [
        "https://a.example",
        "http://b.example:8080",
    ]
    # A String stays a string, commas and all.
    assert resolve({"Ref": "Name"}, {}, parameters, template=template) == "x,y"


def test_the_real_template_has_no_cors_when_cors_origins_is_empty() -> None:
    template = load_template(TEMPLATE)
    assert template["Parameters"]["CorsOrigins"]["Default"] == ""
    assert http_api_cors(template, {}, parameter_values(template)) is None


def test_the_real_template_allows_exactly_the_cors_origins_given() -> None:
    template = load_template(TEMPLATE)
    origins = "https://forms.example.com,http://localhost:8080"
    cors = http_api_cors(template, {}, parameter_values(template, {"CorsOrigins": origins}))
    assert cors == {
        "AllowOrigins": ["https://forms.example.com", "http://localhost:8080"],
        "AllowMethods": ["GET", "POST", "OPTIONS"],
        "AllowHeaders": ["content-type", "accept", "idempotency-key"],
        "MaxAge": 600,
        "AllowCredentials": False,
    }
    # Nothing in the configuration itself opens the API to every origin.
    assert "*" not in str(template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"])


def test_cors_origins_refuses_a_wildcard_or_a_path_at_deploy() -> None:
    # CloudFormation matches each member of a CommaDelimitedList against AllowedPattern.
    spec = load_template(TEMPLATE)["Parameters"]["CorsOrigins"]
    pattern = re.compile(spec["AllowedPattern"])
    for good in ["", "https://forms.example.com", "http://127.0.0.1:3000"]:
        assert pattern.fullmatch(good), good
    for bad in ["*", "https://*.example.com", "https://forms.example.com/form", "forms.example"]:
        assert not pattern.fullmatch(bad), bad


def test_cors_from_globals_true_shorthand_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        """
Globals:
  HttpApi:
    CorsConfiguration:
      AllowOrigins: [https://global.example]
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
""",
        encoding="utf-8",
    )
    template = load_template(path)
    assert http_api_cors(template, {}, {}) == {"AllowOrigins": ["https://global.example"]}
    template["Resources"]["Api"]["Properties"] = {"CorsConfiguration": True}
    assert http_api_cors(template, {}, {}) == {"AllowOrigins": ["*"]}
    template["Resources"]["Api"]["Properties"] = {"CorsConfiguration": {"AllowOrigin": ["x"]}}
    with pytest.raises(ValueError, match="unknown keys"):
        http_api_cors(template, {}, {})
    assert http_api_cors({"Resources": {}}, {}, {}) is None

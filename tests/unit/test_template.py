"""What template.yaml promises operators: logs that expire, say no secrets, alarms that arrive."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import TEMPLATE


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    from pingpost_local.template import load_template

    found: dict[str, Any] = load_template(TEMPLATE)["Resources"]
    return found


def test_every_function_logs_to_a_group_that_expires(resources: dict[str, Any]) -> None:
    functions = {k for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    groups = {
        v["Properties"]["LogGroupName"]["Fn::Sub"]: v["Properties"]
        for v in resources.values()
        if v["Type"] == "AWS::Logs::LogGroup" and "LogGroupName" in v["Properties"]
    }
    assert set(groups) == {f"/aws/lambda/${{{f}}}" for f in functions}
    for properties in groups.values():
        assert properties["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_access_log_keeps_no_query_string_and_no_address(resources: dict[str, Any]) -> None:
    settings = resources["HttpApi"]["Properties"]["AccessLogSettings"]
    group = resources[settings["DestinationArn"]["Fn::GetAtt"][0]]["Properties"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    fields = json.loads(settings["Format"])
    assert fields["route"] == "$context.routeKey"  # the method and path, never the query
    assert not any(
        word in value
        for value in fields.values()
        for word in ("sourceIp", "path", "querystring", "userAgent")
    )


def test_cloudwatch_alarms_may_publish_to_the_encrypted_topic(resources: dict[str, Any]) -> None:
    key = resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"]
    assert key == {"Ref": "AlarmKey"}  # not alias/aws/sns, which CloudWatch cannot use
    statements = resources["AlarmKey"]["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [
        s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch and set(cloudwatch[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}

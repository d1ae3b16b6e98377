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


def _emitted() -> set[str]:
    """The names of the metrics the layer's code emits (literal names, and mode + status)."""
    import re

    from pingpost.answers import MATCHED, UNMATCHED
    from pingpost.fields import MODES
    from tests.conftest import ROOT

    source = "".join(p.read_text() for p in (ROOT / "layers").rglob("*.py"))
    literal = set(re.findall(r'add_metric\(\s*name="(\w+)"', source))
    return literal | {f"{m.capitalize()}{s}" for m in MODES for s in (MATCHED, UNMATCHED)}


def test_the_dashboard_shows_only_metrics_the_code_emits_and_every_function(
    resources: dict[str, Any],
) -> None:
    import re

    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    # The template's ${...} references, as names CloudFormation puts in their place
    widgets = json.loads(re.sub(r"\$\{([^}]+)\}", r"\1", body))["widgets"]
    shown: set[str] = set()
    functions: dict[str, set[str]] = {}
    for widget in widgets:
        namespace = ""
        for line in widget["properties"]["metrics"]:
            names = [part for part in line if isinstance(part, str)]
            if not names or names[0] == "...":
                if names and widget["properties"]["title"].startswith("Function"):
                    functions.setdefault(widget["properties"]["title"], set()).add(names[1])
                continue
            namespace = names[0] if names[0] != "." else namespace
            if namespace == "PingPost":
                shown.add(names[1])
            if names[2:3] == ["FunctionName"]:
                functions.setdefault(widget["properties"]["title"], set()).add(names[3])
    assert shown and shown <= _emitted(), sorted(shown - _emitted())
    assert {"Sales", "Revenue", "Delivered", "PingMatched"} <= shown
    every = {k for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    assert functions == {"Function errors": every, "Function duration (p99, ms)": every}


def test_the_figures_function_takes_each_batch_of_the_leads_stream_whole_until_it_is_counted(
    resources: dict[str, Any],
) -> None:
    # It keys what it counted by a batch's first record (pingpost.store.counting): a batch split
    # in two, or begun again at a failed record, would count some writes twice; one given up
    # would lose them.
    (event,) = resources["FiguresFunction"]["Properties"]["Events"].values()
    assert event["Type"] == "DynamoDB"
    assert event["Properties"]["Stream"] == {"Fn::GetAtt": ["LeadsTable", "StreamArn"]}
    assert event["Properties"]["MaximumRetryAttempts"] == -1
    assert event["Properties"]["BisectBatchOnFunctionError"] is False
    assert "FunctionResponseTypes" not in event["Properties"]
    assert event["Properties"]["ParallelizationFactor"] == 1
    view = resources["LeadsTable"]["Properties"]["StreamSpecification"]["StreamViewType"]
    assert view == "NEW_AND_OLD_IMAGES"  # a write's tally is told from the one before it

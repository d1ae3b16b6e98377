"""`pingpost report` on the embedded AWS endpoint: leads pinged, posted, sent in full, sold,
delivered with a failed attempt and parked through the exchange, then the report's exact
figures per vendor and partner, its CSV and its page, and the DynamoDB calls it makes.

The vendor and partners are the test's own (vendor `rpt`, partners 8101-8103 buying only leads
of SRC report-test), removed after it: the session's other tests see none of them.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import count_figures
from tests.leads import complete

KEY = "report-test-key-0123456789"
SRC = "report-test"
PARTNERS = (8101, 8102, 8103)


def _partner(partner_id: int, price: int, url: str, **more: Any) -> dict[str, Any]:
    return {
        "id": partner_id,
        "company": f"Report Buyer {partner_id}",
        "price": price,
        "filters": {"src_allow": [SRC]},
        "delivery": {"url": url, "format": "json"},
    } | more


@pytest.fixture(scope="module")
def seeded(aws: str) -> Iterator[None]:
    """Vendor rpt (cost 5); 8101 at 20 (its endpoint refuses connections: attempts fail),
    8102 at 12 (a host the exchange may not call: parked), 8103 at 30 with a dedupe window."""
    import boto3

    from pingpost.store import partners
    from pingpost_local import seed

    document = seed.Seed.model_validate(
        {
            "vendors": [{"id": "rpt", "name": "Report Vendor", "key": KEY, "cost": 5}],
            "partners": [
                _partner(8101, 20, "http://127.0.0.1:9/leads"),
                _partner(8102, 12, "http://partner.invalid/leads"),
                _partner(8103, 30, "http://127.0.0.1:9/leads", dedupe_days=30),
            ],
        }
    )
    seed.apply(document)
    partners.forget()
    yield
    client = boto3.client("dynamodb")
    client.delete_item(TableName=os.environ["VENDORS_TABLE"], Key={"vendor_id": {"S": "rpt"}})
    for partner_id in PARTNERS:
        key = {"partner_id": {"N": str(partner_id)}}
        client.delete_item(TableName=os.environ["PARTNERS_TABLE"], Key=key)
    partners.forget()


def submit(mode: str, **changes: str) -> Any:
    from pingpost import exchange
    from pingpost.decoding import Request

    return exchange.submit(Request(complete(mode, **({"Key": KEY, "SRC": SRC} | changes))))


def make_leads() -> None:
    """Four leads of rpt counted (A pinged and posted, B unmatched, C and D in full), a test
    lead and repeats that count nothing, and A's deliveries: a failed attempt and a parked one.
    """
    from pingpost import delivery
    from pingpost.store.queues import Delivery

    pair = "8101,8102"
    a = submit("ping", Match_With_Partner_ID=pair)
    assert a.status == "Matched"
    post = {"Lead_ID": str(a.lead_id), "Match_With_Partner_ID": pair, "Allowed_Times_Sold": "2"}
    assert submit("post", **post).status == "Matched"  # 8101 at 20, then 8102 at 12
    assert submit("post", **post).status == "Matched"  # a repeat: the first post's answer
    assert submit("ping", SRC="elsewhere", Match_With_Partner_ID=pair).status == "Unmatched"
    submit("ping", Test_Lead="1")  # a test lead (a test partner may match it): not counted
    c_fields = complete(
        "full", Key=KEY, SRC=SRC, Match_With_Partner_ID="8103,8101", Allowed_Times_Sold="1"
    )
    from pingpost import exchange
    from pingpost.decoding import Request

    c = exchange.submit(Request(dict(c_fields)))  # 8103 at 30
    assert exchange.submit(Request(dict(c_fields))).lead_id == c.lead_id  # a repeat
    # D: C's consumer again; 8103's dedupe refuses it in the sale's transaction, 8101 buys.
    d = exchange.submit(Request(c_fields | {"First_Name": "Dee"}))
    assert (c.status, d.status) == ("Matched", "Matched") and d.lead_id != c.lead_id
    with pytest.raises(delivery.Undelivered):
        delivery.deliver(Delivery(a.lead_id, 8101))  # refused connection: a failed attempt
    assert delivery.deliver(Delivery(a.lead_id, 8102)) == "parked"


@pytest.fixture(scope="module")
def calls(seeded: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The report's output, its files, and the DynamoDB calls it made: (operation, table)."""
    from contextlib import redirect_stdout

    from pingpost.store import dynamodb
    from pingpost_local.cli import main

    make_leads()
    count_figures()  # what the leads' stream feeds the figures function within seconds
    made: list[tuple[str, str]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        tables = params.get("RequestItems") or {params.get("TableName"): None}
        made.extend((model.name, str(table)) for table in tables)

    where = tmp_path_factory.mktemp("report")
    events = dynamodb().meta.events
    events.register("before-parameter-build.dynamodb", record, unique_id="report-calls")
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            main(["report", "--since", "7d", "--csv", str(where / "r.csv")])
            main(["report", "--since", "2d", "--html", str(where / "r.html")])
    finally:
        events.unregister("before-parameter-build.dynamodb", unique_id="report-calls")
    return {"made": made, "out": out.getvalue(), "where": where}


def rows(text: str) -> dict[str, dict[str, str]]:
    return {f"{r['kind']} {r['id']}": r for r in csv.DictReader(io.StringIO(text))}


def test_the_csv_has_the_exact_figures_per_vendor_and_partner(calls: dict[str, Any]) -> None:
    found = rows((calls["where"] / "r.csv").read_text())
    figures = [
        "pings",
        "matched",
        "match_rate",
        "posts",
        "sales",
        "revenue",
        "margin",
        "deliveries_failed",
        "parked",
    ]

    def of(row: str) -> list[str]:
        return [found[row][f] for f in figures]

    # Margin: 20 - 5 and 12 (cost 5 is owed once a lead), 30 - 5, 20 - 5.
    assert of("vendor rpt") == ["4", "3", "0.7500", "3", "4", "82.00", "67.00", "", ""]
    assert of("partner 8101") == ["", "", "", "", "2", "40.00", "30.00", "1", "0"]
    assert of("partner 8102") == ["", "", "", "", "1", "12.00", "12.00", "0", "1"]
    assert of("partner 8103") == ["", "", "", "", "1", "30.00", "25.00", "0", "0"]
    assert found["vendor rpt"]["name"] == "Report Vendor"


def test_the_table_shows_the_same_figures(calls: dict[str, Any]) -> None:
    out = calls["out"]
    assert re.search(
        r"^pingpost report: \d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d \(UTC days\)$", out, re.M
    )
    line = next(x for x in out.splitlines() if x.startswith("  rpt "))
    assert line.split()[3:] == ["4", "75.0%", "3", "4", "82.00", "67.00", "-", "-", "0", "0.0%"]
    line = next(x for x in out.splitlines() if x.startswith("  8101 "))
    assert line.split()[4:] == ["-", "-", "-", "2", "40.00", "30.00", "1", "0", "0", "0.0%"]


def test_the_page_is_self_contained_with_its_three_charts(calls: dict[str, Any]) -> None:
    page = (calls["where"] / "r.html").read_text()
    assert page.count("<svg") == 3
    for title in ("Volume per day", "Match rate per day", "Revenue per day"):
        assert title in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "Report Buyer 8102" in page


def test_the_report_reads_day_items_by_key_and_never_the_leads(calls: dict[str, Any]) -> None:
    tables = {
        os.environ["COUNTERS_TABLE"]: "counters",
        os.environ["VENDORS_TABLE"]: "vendors",
        os.environ["PARTNERS_TABLE"]: "partners",
        os.environ["LEADS_TABLE"]: "leads",
    }
    made = {(operation, tables.get(table, table)) for operation, table in calls["made"]}
    assert made == {("Scan", "vendors"), ("Scan", "partners"), ("BatchGetItem", "counters")}


def test_the_day_items_are_the_keys_the_docs_name(calls: dict[str, Any]) -> None:
    import boto3

    from pingpost.store.figures import day

    on = day(datetime.now(UTC))
    item = boto3.client("dynamodb").get_item(
        TableName=os.environ["COUNTERS_TABLE"], Key={"counter": {"S": f"day#{on}#partner#8102"}}
    )["Item"]
    assert item["parked"] == {"N": "1"} and item["sales"] == {"N": "1"}

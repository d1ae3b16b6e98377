"""Returns against the embedded AWS endpoint: a partner gives back a lead it bought, once.

The demo seed's partner 142 (Roof Co) takes returns for 7 days, with the return key of
events/returns-post.json; the tests sell it leads and return them through ReturnsFunction.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from tests.conftest import DEMO_SEED, ROOT, counter_item, local_function
from tests.leads import complete

EVENT = json.loads((ROOT / "events" / "returns-post.json").read_text())
KEY = EVENT["headers"]["authorization"].removeprefix("Bearer ")
ROOF_CO = 142


def _capped() -> Any:
    from pingpost.models import Caps

    return Caps(daily=1000)


@pytest.fixture(scope="module")
def demo(aws: str) -> None:
    from pingpost_local import seed

    document = seed.load(DEMO_SEED)
    for partner in document.partners:  # one consumer's leads sell again (dedupe: test_sales)
        partner.dedupe_days = 0
        if partner.id == ROOF_CO:
            partner.caps = _capped()  # its sales count in its day counter, which a return credits
    seed.apply(document)


def reseed_roof_co() -> None:
    """Roof Co as the tests have it (after a test changed it)."""
    from pingpost_local import seed

    (roof_co,) = [p for p in seed.load(DEMO_SEED).partners if p.id == ROOF_CO]
    roof_co.dedupe_days, roof_co.caps = 0, _capped()
    seed.apply(seed.Seed(partners=[roof_co]))


def submitted(**changes: str) -> int:
    """A new lead sent in full (the ID of what was stored)."""
    from pingpost import exchange
    from pingpost.decoding import Request

    return exchange.submit(Request(complete("full", **changes))).lead_id


def sold_lead() -> int:
    """A new lead, sold to Roof Co (the demo's best price for metal roofing in Illinois)."""
    lead_id = submitted()
    assert str(ROOF_CO) in lead(lead_id).sold_to
    return lead_id


def lead(lead_id: int) -> Any:
    from pingpost.store import leads

    found = leads.get(lead_id)
    assert found is not None
    return found


def send(body: Any, key: str | None = KEY) -> tuple[int, dict[str, Any]]:
    """POST /returns through ReturnsFunction, as API Gateway hands it the request."""
    headers = {k: v for k, v in EVENT["headers"].items() if k != "authorization"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    raw = body if isinstance(body, str) else json.dumps(body)
    result = local_function("ReturnsFunction").invoke(EVENT | {"headers": headers, "body": raw})
    assert result["headers"]["Content-Type"].startswith("application/json")
    return result["statusCode"], json.loads(result["body"])


def counters(lead_id: int) -> dict[str, Decimal]:
    """Roof Co's day counter (sold, spent) and the day figures of it and of the lead's vendor."""
    from tests.conftest import count_figures

    count_figures()
    from pingpost.caps import periods
    from pingpost.store import figures, partners

    roof_co = partners.by_id(ROOF_CO)
    assert roof_co is not None
    now = datetime.now(UTC)
    cap = counter_item(f"cap#{ROOF_CO}#day#{periods(roof_co, now).day}")
    vendor = figures.vendor_day(lead(lead_id).vendor_id, now, figures.Figures()).key
    partner = figures.partner_key(ROOF_CO, figures.day(now))
    read = figures.read([vendor, partner])
    return {
        "sold": Decimal(cap.get("sold", 0)),
        "spent": Decimal(cap.get("spent", 0)),
        "partner returns": Decimal(read[partner].returns),
        "partner revenue": read[partner].revenue,
        "vendor returns": Decimal(read[vendor].returns),
        "vendor margin": read[vendor].margin,
    }


def test_the_event_file_returns_a_lead_roof_co_bought_and_credits_it_once(demo: None) -> None:
    lead_id = sold_lead()
    before = counters(lead_id)
    status, said = send(json.loads(EVENT["body"]) | {"lead_id": lead_id})
    assert (status, said) == (200, {"status": "returned", "lead_id": lead_id, "partner_id": 142})
    after = counters(lead_id)
    assert after["sold"] == before["sold"] - 1
    assert after["spent"] == before["spent"] - Decimal("25")
    assert after["partner returns"] == before["partner returns"] + 1
    assert after["partner revenue"] == before["partner revenue"] - Decimal("25")
    assert after["vendor returns"] == before["vendor returns"] + 1
    assert after["vendor margin"] == before["vendor margin"] - Decimal("25")
    (record,) = lead(lead_id).returns
    assert record["partner_id"] == ROOF_CO
    assert record["reason"] == "the consumer's phone is disconnected"
    # Still a sale of the lead (its history), marked returned.
    assert str(ROOF_CO) in lead(lead_id).sold_to

    status, said = send({"lead_id": lead_id, "reason": "again"})
    assert (status, said["status"]) == (200, "returned already")
    assert counters(lead_id) == after
    assert len(lead(lead_id).returns) == 1


def test_ten_returns_of_one_sale_at_once_credit_it_once(demo: None) -> None:
    from pingpost import returns
    from pingpost.store import partners

    lead_id = sold_lead()
    before = counters(lead_id)
    roof_co = partners.by_id(ROOF_CO)
    assert roof_co is not None
    with ThreadPoolExecutor(max_workers=10) as pool:
        done = list(pool.map(lambda n: returns.give_back(roof_co, lead_id, f"#{n}"), range(10)))
    assert sorted(done) == ["returned"] + ["returned already"] * 9
    after = counters(lead_id)
    assert after["sold"] == before["sold"] - 1
    assert after["spent"] == before["spent"] - Decimal("25")
    assert after["partner returns"] == before["partner returns"] + 1
    assert len(lead(lead_id).returns) == 1


def test_a_return_is_refused_with_its_reason_and_changes_nothing(demo: None) -> None:
    from pingpost import returns
    from pingpost.errors import LeadNotFound
    from pingpost.store import partners

    lead_id = sold_lead()
    # A lead Roof Co did not buy (another partner did), made before the figures are read.
    unsold = submitted(Home_Improvement_Product="Gutters")
    before = counters(lead_id)
    roof_co = partners.by_id(ROOF_CO)
    assert roof_co is not None

    # Not a partner's key, or none: 401, the same answer whichever part is wrong.
    other = "225." + KEY.split(".", 1)[1]
    unicode_digit, long_id = "\u00b2." + KEY.split(".", 1)[1], "1" * 4400 + ".x"
    for key in (
        None,
        "",
        "142.wrong",
        other,
        "nonsense",
        "99999.x",
        unicode_digit,
        long_id,
        "142.",
    ):
        assert send({"lead_id": lead_id, "reason": "x"}, key) == (
            401,
            {"status": "error", "error": "Invalid return key"},
        )
    # Not JSON, or not the fields it must have: 400.
    for body in ("{", "[1]", {"lead_id": "1", "reason": "x"}, {"lead_id": lead_id}, {}):
        status, said = send(body)
        assert status == 400, body
        assert said["status"] == "error"
    assert send({"lead_id": lead_id, "reason": "x" * 201})[0] == 400
    lone_surrogate = '{"lead_id": ' + str(lead_id) + ', "reason": "\\ud800"}'
    assert send(lone_surrogate)[0] == 400
    assert send({"lead_id": lead_id, "reason": "   "})[0] == 400
    # A lead Roof Co did not buy, and one nobody bought: 404.
    assert str(ROOF_CO) not in lead(unsold).sold_to
    assert send({"lead_id": unsold, "reason": "x"})[0] == 404
    assert send({"lead_id": 10**12, "reason": "x"})[0] == 404
    assert send({"lead_id": 10**40, "reason": "x"})[0] == 404
    # Past its window of 7 days: 422, naming the day it was sold.
    later = datetime.now(UTC) + timedelta(days=7, minutes=1)
    with pytest.raises(returns.ReturnRefused, match=r"past the 7 days"):
        returns.give_back(roof_co, lead_id, "late", later)
    # A partner that takes no returns: 422.
    with pytest.raises(returns.ReturnRefused, match="takes no returns"):
        returns.give_back(roof_co.model_copy(update={"return_days": 0}), lead_id, "x")
    with pytest.raises(LeadNotFound):
        returns.give_back(roof_co, unsold, "x")
    assert counters(lead_id) == before
    assert lead(lead_id).returns == []
    # Within the window still (a day short of it): returned.
    assert returns.give_back(roof_co, lead_id, "x", later - timedelta(days=1)) == "returned"


def test_the_operator_returns_a_lead_and_lead_show_says_so(
    demo: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from pingpost_local.cli import main

    lead_id = sold_lead()
    capsys.readouterr()  # (what the sale printed: metrics, when their buffer was full)
    main(["returns", "add", str(lead_id), "142", "--reason", "wrong number"])
    assert capsys.readouterr().out.strip() == f"lead {lead_id} returned by partner 142"
    main(["lead", "show", str(lead_id)])
    shown = capsys.readouterr().out
    sale = next(line for line in shown.splitlines() if line.strip().startswith("partner 142"))
    assert "returned" in sale and "wrong number" in sale
    with pytest.raises(SystemExit, match="did not buy"):
        main(["returns", "add", str(lead_id), "225", "--reason", "x"])
    for reason in ("", "  ", "x" * 201):
        with pytest.raises(SystemExit, match="reason must be text of 1 to 200"):
            main(["returns", "add", str(sold_lead()), "142", "--reason", reason])


def test_a_rotated_key_returns_and_the_last_one_stops_working(
    demo: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from pingpost.store import partners
    from pingpost_local.cli import main

    try:
        main(["partners", "rotate-key", "142"])
        printed = capsys.readouterr().out
        (new,) = [w for w in printed.split() if w.startswith("142.")]
        stored = partners.by_id(ROOF_CO)
        assert stored is not None and stored.return_key_hash is not None
        assert new.split(".", 1)[1] not in json.dumps(stored.model_dump(mode="json"))
        lead_id = sold_lead()
        assert send({"lead_id": lead_id, "reason": "x"})[0] == 401  # the seed's key
        assert send({"lead_id": lead_id, "reason": "x"}, new)[1]["status"] == "returned"
    finally:
        reseed_roof_co()


def set_lead(lead_id: int, update: str, **values: Any) -> None:
    """Change the stored lead behind the exchange's back (`values`: :name -> value)."""
    from pingpost.store import to_item

    names = {"#c": f"charged#{ROOF_CO}", "#p": str(ROOF_CO), "#st": "state", "#d": "deliveries"}
    used = {k: v for k, v in names.items() if k in update}
    boto3.client("dynamodb").update_item(
        TableName=os.environ["LEADS_TABLE"],
        Key={"lead_id": {"N": str(lead_id)}},
        UpdateExpression=update,
        ExpressionAttributeNames=used,
        ExpressionAttributeValues=to_item(values),
    )


def test_through_the_function_past_the_window_or_taking_none_is_422_and_says_why(
    demo: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from pingpost_local.cli import main

    lead_id, fresh = sold_lead(), sold_lead()
    before = counters(lead_id)
    eight_days_ago = int((datetime.now(UTC) - timedelta(days=8)).timestamp() * 1000)
    from pingpost.store import sales

    held = sales.charge_of(ROOF_CO, lead(lead_id).charged[str(ROOF_CO)])
    earlier = sales.charge_text(ROOF_CO, eight_days_ago, held["counters"])
    set_lead(lead_id, "SET #c = :c", **{":c": earlier})
    status, said = send({"lead_id": lead_id, "reason": "late"})
    assert status == 422 and "past the 7 days" in said["error"], said
    try:
        main(["partners", "update", "142", '{"return_days": 0}'])
        status, said = send({"lead_id": fresh, "reason": "x"})
        assert status == 422 and "takes no returns" in said["error"], said
    finally:
        reseed_roof_co()
    capsys.readouterr()
    assert counters(lead_id) == before
    assert lead(lead_id).returns == [] and lead(fresh).returns == []


def test_a_sale_awaiting_its_buyers_answer_cannot_be_returned(demo: None) -> None:
    lead_id = sold_lead()
    set_lead(lead_id, "SET #d.#p.#st = :reserved", **{":reserved": "reserved"})
    assert send({"lead_id": lead_id, "reason": "x"})[0] == 404
    assert lead(lead_id).returns == []


def test_a_return_gives_back_what_the_sale_counted_whatever_the_partner_became(
    demo: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from pingpost_local.cli import main

    lead_id = sold_lead()
    from pingpost.store import sales

    held = sales.charge_of(ROOF_CO, lead(lead_id).charged[str(ROOF_CO)])
    (counted,) = held["counters"]  # Roof Co has a daily cap only
    assert counted.startswith(f"cap#{ROOF_CO}#day#")
    table = boto3.client("dynamodb")
    try:
        # Since the sale: a weekly cap, and a timezone whose day is another.
        changes = '{"caps": {"weekly": 50}, "timezone": "Pacific/Kiritimati"}'
        main(["partners", "update", "142", changes])
        # ... and the sale's day counter has expired (deleted by DynamoDB's TTL).
        table.delete_item(TableName=os.environ["COUNTERS_TABLE"], Key={"counter": {"S": counted}})
        assert send({"lead_id": lead_id, "reason": "x"})[1]["status"] == "returned"
    finally:
        reseed_roof_co()
        capsys.readouterr()
    given = counter_item(counted)
    assert (given["sold"], given["spent"]) == (-1, -25)
    assert given["expires_at"] > datetime.now(UTC).timestamp()  # it expires again
    weeks = table.scan(
        TableName=os.environ["COUNTERS_TABLE"],
        FilterExpression="begins_with(#c, :week)",
        ExpressionAttributeNames={"#c": "counter"},
        ExpressionAttributeValues={":week": {"S": f"cap#{ROOF_CO}#week#"}},
    )["Items"]
    assert weeks == []  # the sale counted in no week: the return gives none back


def test_a_sale_to_a_partner_without_caps_counts_in_no_counter_and_is_returned(
    demo: None,
) -> None:
    from pingpost_local import seed

    (uncapped,) = [p for p in seed.load(DEMO_SEED).partners if p.id == ROOF_CO]
    uncapped.dedupe_days = 0
    seed.apply(seed.Seed(partners=[uncapped]))
    try:
        lead_id = sold_lead()
        from pingpost.store import sales

        # The sale keeps when it was made, and that it counted in no counter.
        held = sales.charge_of(ROOF_CO, lead(lead_id).charged[str(ROOF_CO)])
        assert held["counters"] == [] and held["at"] > 0
        before = counters(lead_id)
        assert send({"lead_id": lead_id, "reason": "x"})[1]["status"] == "returned"
        after = counters(lead_id)
    finally:
        reseed_roof_co()
    assert (after["sold"], after["spent"]) == (before["sold"], before["spent"])  # none credited
    assert after["partner returns"] == before["partner returns"] + 1


def test_a_second_return_says_so_even_past_the_window(demo: None) -> None:
    from pingpost import returns
    from pingpost.store import partners

    roof_co = partners.by_id(ROOF_CO)
    assert roof_co is not None
    lead_id = sold_lead()
    assert returns.give_back(roof_co, lead_id, "x") == "returned"
    later = datetime.now(UTC) + timedelta(days=30)
    assert returns.give_back(roof_co, lead_id, "x", later) == "returned already"
    none = roof_co.model_copy(update={"return_days": 0})
    assert returns.give_back(none, lead_id, "x") == "returned already"


def test_the_bearer_scheme_is_read_in_any_case(demo: None) -> None:
    lead_id = sold_lead()
    headers = {"authorization": f"bearer {KEY}"}
    body = json.dumps({"lead_id": lead_id, "reason": "x"})
    result = local_function("ReturnsFunction").invoke(
        EVENT | {"headers": EVENT["headers"] | headers, "body": body}
    )
    assert (result["statusCode"], json.loads(result["body"])["status"]) == (200, "returned")

"""Auto insurance and solar leads through every door of `pingpost serve`, as the demo seed's
vendors and partners of those types send and buy them (Home Improvement's own tests are the
rest of this folder)."""

from __future__ import annotations

import json
from typing import Any

import requests

from tests.conftest import DEMO_SEED, Server
from tests.e2e.test_http import form, get, lead, xml
from tests.leads import KEY, complete

_VENDORS = {v["id"]: v["key"] for v in json.loads(DEMO_SEED.read_text())["vendors"]}
AUTO_KEY, SOLAR_KEY = _VENDORS["demo-auto"], _VENDORS["demo-solar"]
AUTO, SOLAR = "20", "21"


def auto(mode: str, **changes: str) -> dict[str, str]:
    return complete(mode, AUTO, Key=AUTO_KEY, **changes)


def solar(mode: str, **changes: str) -> dict[str, str]:
    return complete(mode, SOLAR, Key=SOLAR_KEY, **changes)


def decisions(stored: dict[str, Any]) -> dict[int, str]:
    """Partner -> "matched", "sold" or the rule that kept it from the lead."""
    from pingpost.store.leads import read_decisions

    return {partner: str(verdict) for partner, verdict in read_decisions(stored["decisions"])}


def test_an_auto_insurance_lead_is_pinged_posted_and_sold_by_its_field_filters(
    server: Server,
) -> None:
    # Safe Drive (2001, $22) takes first drivers of good credit aged 25 or more; Any Auto
    # Quotes (2001, $9) any auto lead. No Home Improvement partner is a candidate.
    ping = form(server, "/ping", auto("ping", Driver_1_Age="44", Driver_1_Birthdate="1980-12-23"))
    assert (ping.status, ping["status"]) == (200, "Matched"), ping.body
    lead_id = ping["lead_id"]
    assert decisions(lead(server, lead_id)) == {2001: "matched", 2002: "matched"}
    post = xml(server, auto("post", Lead_ID=lead_id or ""))
    assert (post.status, post["status"]) == (200, "Matched"), post.body
    stored = lead(server, lead_id)
    assert stored["status"] == "sold" and list(stored["sold_to"]) == ["2001"]
    # A date in another format the field accepts is kept in its first (MM/DD/YYYY).
    assert stored["data"]["Driver_1_Birthdate"] == "12/23/1980"
    assert stored["data"]["Driver_1_State"] == "IL"  # looked up from Driver_1_Zip


def test_a_field_filter_that_refuses_a_lead_is_explained(server: Server) -> None:
    ping = get(server, "/api.php", auto("ping", Driver_1_Credit_Rating="poor", Driver_1_Age="19"))
    assert ping["status"] == "Matched"
    assert decisions(lead(server, ping["lead_id"]))[2001] == "Driver_1_Credit_Rating Poor not taken"
    young = get(server, "/api.php", auto("ping", Driver_1_Age="19"))
    assert decisions(lead(server, young["lead_id"]))[2001] == "Driver_1_Age 19 below 25"
    unsaid = get(server, "/api.php", auto("ping"))
    assert decisions(lead(server, unsaid["lead_id"]))[2001] == "Driver_1_Age not sent"
    shown = server.pingpost("lead", "show", str(young["lead_id"]))
    assert shown.returncode == 0, shown.stderr
    assert "Driver_1_Age 19 below 25" in shown.stdout and "Safe Drive Insurance" in shown.stdout


def test_a_solar_lead_sent_whole_under_its_aliases_is_sold(server: Server) -> None:
    # Monthly_Electric_Bill is read as Electric_Bill, Primary_Phone as Home_Phone, as publishers
    # of solar leads spell them; Bright Roof (2101, $30) takes sunny roofs and bills over $150.
    fields = solar("full", Roof_Shade="No Shade")
    fields["Monthly_Electric_Bill"] = fields.pop("Electric_Bill")
    fields["Primary_Phone"] = fields.pop("Home_Phone")
    answer = form(server, "/api.php", fields)
    assert answer["status"] == "Matched", answer.body
    stored = lead(server, answer["lead_id"])
    assert list(stored["sold_to"]) == ["2101"]
    assert stored["data"]["Home_Phone"] == fields["Primary_Phone"]
    assert stored["data"]["Electric_Bill"] == "$151-200"
    shady = form(server, "/api.php", solar("full", Roof_Shade="A lot of Shade"))
    stored = lead(server, shady["lead_id"])
    assert list(stored["sold_to"]) == ["2102"]
    assert decisions(stored)[2101] == "Roof_Shade A lot of Shade not taken"


def test_each_type_is_checked_by_its_own_fields(server: Server) -> None:
    missing = form(server, "/ping", auto("ping", Vehicle_1_Year="", Driver_1_Gender="Other"))
    assert missing.status == 400
    assert missing["error"] == (
        "Invalid value for Driver_1_Gender: must be one of: Male, Female; "
        "Required value Vehicle_1_Year is missing"
    )
    unknown = form(server, "/ping", auto("ping", TYPE="5"))
    assert (unknown.status, unknown["error"]) == (
        400,
        "Invalid value for TYPE: must be a lead type of this exchange: 7 (Home Improvement), "
        "20 (Auto Insurance), 21 (Solar)",
    )


def test_a_vendor_sends_only_its_lead_types_and_a_post_keeps_its_pings(server: Server) -> None:
    home = form(server, "/ping", complete("ping", Key=AUTO_KEY))
    assert (home.status, home["error"]) == (
        403,
        "This Key may not send leads of TYPE 7 (Home Improvement): only 20 (Auto Insurance)",
    )
    # The demo vendor sends every type; a post of another type than its ping is refused.
    pinged = form(server, "/ping", complete("ping", SOLAR, Key=KEY))
    assert pinged["status"] == "Matched", pinged.body
    # ... whether or not the post's fields are those of the type it sends
    for fields in (complete("post"), complete("post", AUTO)):
        post = form(server, "/post", fields | {"Key": KEY, "Lead_ID": pinged["lead_id"] or ""})
        assert (post.status, post["error"]) == (
            400,
            f"Invalid value for TYPE: Lead_ID {pinged['lead_id']} was pinged as TYPE 21; its"
            " post must send TYPE=21",
        )


def test_personal_data_on_a_ping_is_kept_and_never_in_a_bid_request(server: Server) -> None:
    from pingpost.bids import withheld
    from pingpost.fields import TABLES

    sent = auto("ping", Driver_1_Email="early@example.com", Driver_1_Daytime_Phone="3125550144")
    answer = form(server, "/ping", sent)
    assert answer["status"] == "Matched"
    assert lead(server, answer["lead_id"])["data"]["Driver_1_Email"] == "early@example.com"
    kept_back = withheld(TABLES[AUTO])
    assert {"Driver_1_Email", "Driver_2_Daytime_Phone", "IP_Address"} <= kept_back
    assert "Driver_1_Credit_Rating" not in kept_back


def test_the_api_describes_every_type(server: Server) -> None:
    document = requests.get(server.url + "/openapi.yaml", timeout=30).text
    assert "PingAutoInsuranceRequest" in document and "FullSolarRequest" in document


def test_the_client_sends_a_lead_of_another_type(server: Server) -> None:
    fields = [
        f"{k}={v}"
        for k, v in auto("ping").items()
        if k not in ("Key", "Mode", "TYPE", "API_Action")
    ]
    sent = server.pingpost(
        "ping", "--url", server.url, "--key", AUTO_KEY, "--type", AUTO, "--encoding", "xml", *fields
    )
    assert sent.returncode == 0, sent.stderr
    status, lead_id = sent.stdout.split()[:2]
    assert status == "Matched"
    assert lead(server, lead_id)["data"]["TYPE"] == AUTO


def test_a_form_of_each_type_posted_by_a_browser_lands_on_the_thank_you_page(
    server: Server,
) -> None:
    from lxml import html

    from pingpost.fields import TABLES

    # The banner names each form
    (said,) = [line for line in server.output if line.startswith("Web form:")]
    assert f"{server.url}/form?type=20, {server.url}/form?type=21 (local only" in said

    for code, key in ((AUTO, AUTO_KEY), (SOLAR, SOLAR_KEY)):
        page = requests.get(f"{server.url}/form?type={code}", timeout=30)
        assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
        document = html.fromstring(page.content)
        (form_element,) = document.forms
        # What a consumer's browser sends: the hidden inputs, each field filled in, the box
        # ticked (a checkbox sends its value)
        sent = {i.name: i.value for i in form_element.inputs if i.get("type") == "hidden"}
        assert (sent["Key"], sent["TYPE"], sent["Mode"]) == (key, code, "full")
        lead_table = TABLES[code]
        for element in form_element.inputs:
            if element.get("type") != "hidden" and element.name in lead_table.by_name:
                sent[element.name] = lead_table.by_name[element.name].example
        sent["TCPA_Consent"] = "Yes"
        answer = requests.post(
            server.url + form_element.action,
            data=sent,
            headers={"Accept": "text/html", "Origin": server.url},
            allow_redirects=False,
            timeout=30,
        )
        assert answer.status_code == 303, answer.text
        assert answer.headers["Location"].startswith(f"{server.url}/thanks?")
        assert "status=Matched" in answer.headers["Location"], answer.headers["Location"]


def test_a_partner_buys_an_auto_insurance_consumer_once_in_its_dedupe_window(
    server: Server,
) -> None:
    # Safe Drive keeps a 30-day window: the same driver (email, phone) goes to the next buyer.
    same = {"Driver_1_Email": "twice@example.com", "Driver_1_Daytime_Phone": "3125550177"}
    first = form(server, "/full", auto("full", Driver_1_Age="44") | same)
    assert list(lead(server, first["lead_id"])["sold_to"]) == ["2001"]
    # (another request: the same one again would be its repeat, the same lead)
    again = form(server, "/full", auto("full", Driver_1_Age="45") | same)
    assert again["lead_id"] != first["lead_id"]
    stored = lead(server, again["lead_id"])
    assert list(stored["sold_to"]) == ["2002"]
    assert decisions(stored)[2001].startswith("bought this consumer within its dedupe window")


def test_personal_data_sent_as_an_extra_field_is_masked_in_lead_show(server: Server) -> None:
    # A solar lead carrying fields that are personal data elsewhere (Cell_Phone, Comments,
    # another type's Driver_1_Email): kept as extra fields, shown masked unless --pii
    sent = solar("full", Cell_Phone="3125550188", Driver_1_Email="extra@example.com")
    answer = form(server, "/full", sent)
    shown = server.pingpost("lead", "show", str(answer["lead_id"])).stdout
    assert "3125550188" not in shown and "extra@example.com" not in shown
    assert "Cell_Phone (extra)" in shown and "******0188" in shown
    assert "e***@example.com" in shown
    clear = server.pingpost("lead", "show", str(answer["lead_id"]), "--pii").stdout
    assert "3125550188" in clear and "extra@example.com" in clear


def test_any_other_type_is_refused_naming_the_exchanges(server: Server) -> None:
    for sent in ("100", "abc", "0", "07"):
        answer = form(server, "/ping", auto("ping", TYPE=sent))
        assert (answer.status, answer["error"]) == (
            400,
            "Invalid value for TYPE: must be a lead type of this exchange: 7 (Home Improvement),"
            " 20 (Auto Insurance), 21 (Solar)",
        ), sent

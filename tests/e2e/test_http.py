"""The whole exchange over HTTP, as `pingpost serve` runs it: the spec's examples and more."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from lxml import etree

from pingpost.fields import FIELDS, Kind, table
from tests.conftest import ROOT, Server
from tests.leads import DYNAMIC_KEY, KEY, complete
from tests.unit.test_fields import REJECTED

pytestmark = pytest.mark.e2e

SPEC_KEY = "c65KeXaMpLe_odU5ojoW9x-J9sfJ-GjoxUEcjo.cg-JoW5_9d3uFePP"


@dataclass(frozen=True)
class Reply:
    status: int
    xml: etree._Element
    body: str

    def __getitem__(self, tag: str) -> str | None:
        node = self.xml.find(tag)
        return None if node is None else node.text


def reply(response: requests.Response) -> Reply:
    assert response.headers["Content-Type"] == "application/xml; charset=UTF-8"
    return Reply(response.status_code, etree.fromstring(response.content), response.text)


def get(server: Server, path: str, fields: dict[str, str]) -> Reply:
    return reply(requests.get(server.url + path, params=fields, timeout=30))


def form(server: Server, path: str, fields: dict[str, str]) -> Reply:
    return reply(requests.post(server.url + path, data=fields, timeout=30))


def xml_request(fields: dict[str, str], extra: str = "") -> bytes:
    """The spec's XML structure: control tags at the top, lead fields in <Data>."""
    request = etree.Element("Request")
    data = etree.Element("Data")
    for f in table(fields).fields:
        if f.name in fields:
            etree.SubElement(request if f.control else data, f.name).text = fields[f.name]
    request.append(data)
    body = etree.tostring(request, xml_declaration=True, encoding="UTF-8")
    return body.replace(b"</Request>", extra.encode() + b"</Request>")


def xml(server: Server, fields: dict[str, str], extra: str = "") -> Reply:
    body = xml_request(fields, extra)
    return reply(
        requests.post(
            server.url + "/apiXML.php", data=body, headers={"Content-Type": "text/xml"}, timeout=30
        )
    )


def lead(server: Server, lead_id: str | None) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    item = server.dynamodb().get_item(TableName="LeadsTable", Key={"lead_id": {"N": str(lead_id)}})[
        "Item"
    ]
    return {k: TypeDeserializer().deserialize(v) for k, v in item.items()}


# The specification's examples.


def test_spec_get_request_example(server: Server) -> None:
    # Given the spec's GET example as printed (its Key is an example, not a vendor's)
    query = f"Key={SPEC_KEY}&API_Action=pingPostLead&Mode=post&First_Name=John&Last_Name=Doe"
    answer = reply(requests.get(f"{server.url}/api.php?{query}", timeout=30))
    assert (answer.status, answer["status"], answer["error"]) == (401, "Error", "Invalid Key")
    # With a vendor's Key the same request lacks the other post-required fields
    answer = reply(requests.get(f"{server.url}/api.php?{query.replace(SPEC_KEY, KEY)}", timeout=30))
    assert answer.status == 400
    assert answer["error"] == (
        "Required value Lead_ID is missing; Required value TYPE is missing; "
        "Required value IP_Address is missing; Required value Landing_Page is missing; "
        "Required value Address is missing; Required value City is missing; "
        "Required value Email is missing; Required value Home_Phone is missing"
    )


def test_spec_xml_request_with_every_tag_empty(server: Server) -> None:
    template = (ROOT / "tests" / "e2e" / "spec_request.xml").read_bytes()
    answer = reply(
        requests.post(
            server.url + "/apiXML.php",
            data=template,
            timeout=30,
            headers={"Content-Type": "text/xml"},
        )
    )
    assert (answer.status, answer["error"]) == (401, "Required value Key is missing")
    with_key = template.replace(b"<Key></Key>", f"<Key>{KEY}</Key>".encode())
    with_key = with_key.replace(b"<Mode></Mode>", b"<Mode>ping</Mode>")
    answer = reply(requests.post(server.url + "/apiXML.php", data=with_key, timeout=30))
    assert answer.status == 400
    assert answer["error"] == (
        "Required value API_Action is missing; Required value TYPE is missing; "
        "Required value SRC is missing; Required value State is missing; "
        "Required value Zip is missing; Required value Home_Improvement_Product is missing; "
        "Required value Score is missing"
    )


def test_spec_xml_request_ping_then_post(server: Server) -> None:
    ping = xml(server, complete("ping"))
    assert (ping.status, ping["status"]) == (200, "Matched")
    post = xml(server, complete("post", Lead_ID=ping["lead_id"] or ""))
    assert (post.status, post["status"], post["lead_id"]) == (200, "Matched", ping["lead_id"])
    assert lead(server, ping["lead_id"])["status"] == "sold"


def test_response_matched_with_price(server: Server) -> None:
    # Bath Masters pays 32.50; the dynamic-pricing vendor's margin is 2.50 a sale.
    fields = complete(
        "ping", Key=DYNAMIC_KEY, Home_Improvement_Product="Bathroom Remodel", Return_Best_Price="1"
    )
    answer = get(server, "/api.php", fields | {"Allowed_Times_Sold": "1"})
    assert (answer.status, answer["status"], answer["price"]) == (200, "Matched", "30.00")
    assert answer["lead_id"] and answer["lead_id"].isdigit()
    # Sold twice (the vendor's default): Everything Home's 12 adds 9.50.
    assert get(server, "/api.php", fields)["price"] == "39.50"


def test_response_matched_with_allowed_times_sold(server: Server) -> None:
    fields = complete("ping", Home_Improvement_Product="Bathroom Remodel", Allowed_Times_Sold="5")
    answer = get(server, "/api.php", fields)
    # Bath Masters and Everything Home buy bathroom leads at or above the vendor's cost of 10.
    assert (answer["status"], answer["matches"]) == ("Matched", "2")


def test_response_matched_with_hashes(server: Server) -> None:
    fields = complete(
        "ping",
        Home_Improvement_Product="Bathroom Remodel",
        Return_Hash_Type="md5",
        Return_Hash_Value_Type="email",
    )
    answer = get(server, "/api.php", fields)
    hashes = answer.xml.findall("hashes/hash")
    assert [(h.get("ValueType"), h.get("HashType"), h.text) for h in hashes] == [
        ("email", "md5", hashlib.md5(b"leads@bath.example").hexdigest()),
        ("email", "md5", hashlib.md5(b"buy@everything.example").hexdigest()),
    ]


def test_response_unmatched(server: Server) -> None:
    answer = get(server, "/api.php", complete("ping", Zip="90210", Cost="50"))
    assert (answer.status, answer["status"]) == (200, "Unmatched")
    assert answer["lead_id"] and answer["lead_id"].isdigit()
    assert answer.xml.find("price") is None and answer.xml.find("matches") is None


def test_response_error(server: Server) -> None:
    answer = get(server, "/api.php", complete("full", First_Name=""))
    assert answer.status == 400
    assert answer.body.endswith(
        "<response>\n  <status>Error</status>\n"
        "  <error>Required value First_Name is missing</error>\n</response>\n"
    )


# The same request every way it can be sent.


def test_get_form_and_xml_give_the_same_result(server: Server) -> None:
    def lead() -> dict[str, str]:  # the same lead from three consumers (dedupe would refuse one)
        return complete("full", Home_Improvement_Product="Gutters", Allowed_Times_Sold="3")

    answers = [
        get(server, "/api.php", lead()),
        form(server, "/api.php", lead()),
        xml(server, lead()),
    ]
    assert {(a.status, a["status"], a["matches"]) for a in answers} == {(200, "Matched", "2")}
    assert len({a["lead_id"] for a in answers}) == 3


def test_mode_routes_imply_the_mode(server: Server) -> None:
    ping = form(server, "/ping", {k: v for k, v in complete("ping").items() if k != "Mode"})
    assert ping["status"] == "Matched"
    post = get(server, "/post", complete("post", Lead_ID=ping["lead_id"] or ""))
    assert (post.status, post["status"]) == (200, "Matched")
    full = get(server, "/full", complete("full", Mode=""))
    assert full["status"] == "Matched"
    wrong = get(server, "/full", complete("ping"))
    assert wrong.status == 400
    assert wrong["error"] == (
        "Invalid value for Mode: this is the /full endpoint; send Mode=full or leave Mode out"
    )


def test_a_repeated_post_answers_as_the_first_and_sells_nothing_again(server: Server) -> None:
    ping = get(server, "/api.php", complete("ping"))
    post = complete("post", Lead_ID=ping["lead_id"] or "")
    first, second = form(server, "/api.php", post), form(server, "/api.php", post)
    assert first.body == second.body
    assert len(lead(server, ping["lead_id"])["sold_to"]) == 1


# Each field of the table, through HTTP.


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_each_field_accepts_a_good_value_and_refuses_a_bad_one(server: Server, field: Any) -> None:
    if field.name == "Lead_ID":
        ping = get(server, "/api.php", complete("ping"))
        base, good = complete("post"), ping["lead_id"] or ""
    else:
        base, good = complete("full"), field.example
    # Fields that the spec says go in pairs are sent with their partner.
    base |= {
        "Return_Hash_Type": {"Return_Hash_Value_Type": "email"},
        "Return_Hash_Value_Type": {"Return_Hash_Type": "md5"},
    }.get(field.name, {})
    if field.name in ("Key", "Mode"):
        good = base[field.name]
    if field.kind is Kind.STATE:
        good = "IL"
    if field.name == "Format":
        good = "XML"  # JSON is good too, but this test reads XML
    accepted = get(server, "/api.php", base | {field.name: good})
    assert accepted.status == 200, accepted.body
    refused = get(server, "/api.php", base | {field.name: REJECTED[field.kind](field)})
    assert refused.status in (400, 401), refused.body
    assert field.name in (refused["error"] or "") or field.name == "Key"


# Concurrency over HTTP.


def test_50_concurrent_pings_get_50_distinct_lead_ids(server: Server) -> None:
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: get(server, "/ping", complete("ping")), range(50)))
    assert {a.status for a in answers} == {200}
    assert len({a["lead_id"] for a in answers}) == 50


def test_10_concurrent_posts_of_one_lead_sell_it_once(server: Server) -> None:
    ping = get(server, "/ping", complete("ping"))
    post = complete("post", Lead_ID=ping["lead_id"] or "")
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: form(server, "/post", post), range(10)))
    assert {(a.status, a["status"]) for a in answers} == {(200, "Matched")}
    stored = lead(server, ping["lead_id"])
    assert stored["status"] == "sold"
    assert len(stored["sold_to"]) == 1


# Bad requests get an XML error and the right status, never a 500.


def test_bad_requests_get_clear_xml_errors(server: Server) -> None:
    too_big = requests.post(server.url + "/api.php", data={"Comments": "x" * 300_000}, timeout=30)
    assert reply(too_big).status == 413
    neither = requests.post(server.url + "/api.php", data=b"\x00\x01 no fields", timeout=30)
    assert reply(neither).status == 400
    assert reply(neither)["error"] == (
        "The request body is neither XML, JSON nor form fields (name=value&name=value)"
    )
    broken = requests.post(server.url + "/apiXML.php", data=b"<Request><Key>", timeout=30)
    answer = reply(broken)
    assert answer.status == 400
    assert (answer["error"] or "").startswith("The XML request is not well-formed")
    bomb = (
        b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        b"<Request>&b;</Request>"
    )
    assert reply(requests.post(server.url + "/apiXML.php", data=bomb, timeout=30)).status == 400


def test_the_stylesheet_is_served(server: Server) -> None:
    response = requests.get(server.url + "/response.xsl", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xsl")
    etree.XSLT(etree.fromstring(response.content))


def test_the_server_log_holds_no_key_or_personal_data(server: Server) -> None:
    fields = complete("full", Email="private.person@example.com", Home_Phone="3125550199")
    start = len(server.output)  # after the banner, which shows the demo Key on purpose
    assert get(server, "/api.php", fields).status == 200
    assert get(server, "/api.php", fields | {"Email": "bad@"}).status == 400
    time.sleep(0.5)  # the output is read by another thread
    log = "".join(server.output[start:])
    assert "/api.php" in log
    for secret in ("private.person", "3125550199", KEY, "bad@"):
        assert secret not in log


BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_a_browser_posting_a_form_sees_a_readable_page(server: Server) -> None:
    # Given a browser that posts the lead form (it prefers HTML to XML)
    response = requests.post(
        server.url + "/api.php", data=complete("full"), headers={"Accept": BROWSER}, timeout=30
    )
    # Then it gets the page the stylesheet makes, without depending on XSLT in the browser
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert '<p class="status Matched" id="status">Matched</p>' in response.text
    refused = requests.get(
        server.url + "/api.php",
        params=complete("full", Email="x"),
        headers={"Accept": BROWSER},
        timeout=30,
    )
    assert refused.status_code == 400
    assert "Invalid value for Email: must be a valid email address" in refused.text
    # A publisher that asks for the bare XML gets it, browser or not
    raw = requests.get(
        server.url + "/api.php",
        params=complete("full", Skip_XSL="1"),
        headers={"Accept": BROWSER},
        timeout=30,
    )
    assert reply(raw).status == 200


def test_pingpost_seed_upserts_into_the_endpoint_the_environment_names(
    server: Server, tmp_path: Any
) -> None:
    import json

    path = tmp_path / "seed.json"
    env = os.environ | {
        "AWS_ENDPOINT_URL": server.aws,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }

    def seed(document: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        path.write_text(json.dumps(document))
        return subprocess.run(
            [sys.executable, "-m", "pingpost_local.cli", "seed", str(path)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    late = {"vendors": [{"id": "late", "key": "late-vendor-key-0123456789", "cost": 1}]}
    for _ in range(2):  # idempotent
        done = seed(late)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "seeded 1 vendors and 0 partners"
    answer = get(server, "/ping", complete("ping", Key="late-vendor-key-0123456789"))
    assert (answer.status, answer["status"]) == (200, "Matched")
    bad = seed({"vendors": [{"id": "x", "key": "short"}]})
    assert bad.returncode != 0
    assert "cannot read seed file" in bad.stderr and "key" in bad.stderr


# Every matching option of the spec, end to end. Roofing in Chicago: Roof Co (142) pays 25,
# Everything Home (1543) pays 12; the vendor's cost is 10.


def sold_to(server: Server, lead_id: str | None) -> list[int]:
    return sorted(int(p) for p in lead(server, lead_id)["sold_to"])


def test_skip_partner_id_and_match_with_partner_id(server: Server) -> None:
    skipped = get(server, "/full", complete("full", Skip_Partner_ID="142"))
    assert sold_to(server, skipped["lead_id"]) == [1543]
    only = get(server, "/full", complete("full", Match_With_Partner_ID="1543,77"))
    assert sold_to(server, only["lead_id"]) == [1543]
    nobody = get(server, "/full", complete("full", Match_With_Partner_ID="225"))
    assert nobody["status"] == "Unmatched"  # Bath Masters buys bathrooms only


def test_cost_overrides_the_vendors_cost_on_ping(server: Server) -> None:
    answer = get(server, "/ping", complete("ping", Cost="20", Allowed_Times_Sold="2"))
    assert (answer["status"], answer["matches"]) == ("Matched", "1")  # 12 < 20
    assert (
        get(server, "/ping", complete("ping", Cost="0", Allowed_Times_Sold="2"))["matches"] == "2"
    )


def test_xml_matches_exclude_the_partners_the_vendor_sold_to(server: Server) -> None:
    extra = (
        '<Matches><Match ValueType="promotionCode" HashType="plain"> rc1 </Match>'
        f'<Match ValueType="email" HashType="sha1">{hashlib.sha1(b"x@y.example").hexdigest()}'
        "</Match></Matches>"
    )
    answer = xml(server, complete("full"), extra)
    assert sold_to(server, answer["lead_id"]) == [1543]


def test_match_with_partner_hashes_selects_among_the_pings_hashes(server: Server) -> None:
    ping = get(
        server,
        "/ping",
        complete("ping", Return_Hash_Type="md5", Return_Hash_Value_Type="company"),
    )
    hashes = {h.text for h in ping.xml.findall("hashes/hash")}
    everything = hashlib.md5(b"everything home").hexdigest()
    assert hashes == {hashlib.md5(b"roof co").hexdigest(), everything}
    selected = (
        "<Match_With_Partner_Hashes>"
        f'<Selected_Partner_Hash ValueType="company" HashType="md5">{everything}'
        "</Selected_Partner_Hash></Match_With_Partner_Hashes>"
    )
    post = xml(server, complete("post", Lead_ID=ping["lead_id"] or ""), selected)
    assert post["status"] == "Matched"
    assert sold_to(server, ping["lead_id"]) == [1543]
    wrong = selected.replace('HashType="md5"', 'HashType="sha1"')
    ping = get(
        server,
        "/ping",
        complete("ping", Return_Hash_Type="md5", Return_Hash_Value_Type="company"),
    )
    refused = xml(server, complete("post", Lead_ID=ping["lead_id"] or ""), wrong)
    assert refused.status == 400
    assert "HashType and ValueType must be those the ping asked for" in (refused["error"] or "")


def test_a_test_lead_is_sold_to_the_test_buyer_only(server: Server) -> None:
    answer = get(server, "/full", complete("full", Test_Lead="1"))
    assert answer["status"] == "Matched"
    stored = lead(server, answer["lead_id"])
    assert stored["test"] is True and list(stored["sold_to"]) == ["9001"]
    real = get(server, "/full", complete("full"))
    assert "9001" not in lead(server, real["lead_id"])["sold_to"]


def test_a_post_that_moves_the_lead_is_matched_again(server: Server) -> None:
    ping = get(server, "/ping", complete("ping"))  # Chicago: Roof Co would buy it
    post = get(server, "/post", complete("post", Lead_ID=ping["lead_id"] or "", Zip="90210"))
    assert post["status"] == "Matched"
    stored = lead(server, ping["lead_id"])
    assert list(stored["sold_to"]) == ["1543"] and stored["data"]["State"] == "CA"
    assert any(e["event"] == "rematch" for e in stored["timeline"])


def test_the_api_is_described_at_openapi_yaml_and_docs(server: Server) -> None:
    # The document of openapi.yaml, and a page of it, where the template has no route
    described = requests.get(server.url + "/openapi.yaml", timeout=30)
    assert described.status_code == 200
    assert described.headers["Content-Type"] == "application/yaml"
    assert described.text == (ROOT / "openapi.yaml").read_text()
    page = requests.get(server.url + "/docs", timeout=30)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<td>GET</td><td>/ping</td>" in page.text
    # A section for each lead type's requests of each mode
    assert "<h2 id=PingHomeImprovementRequest>" in page.text and "<td>yes, or Zip</td>" in page.text
    assert "<h2 id=FullAutoInsuranceRequest>" in page.text
    assert "<td>yes, or Driver_1_Zip</td>" in page.text
    # Only to GET (and HEAD): anything else is the API's own 404
    assert requests.post(server.url + "/docs", timeout=30).status_code == 404
    assert any("/openapi.yaml" in line for line in server.output)


def test_the_banner_says_how_operator_commands_reach_the_embedded_endpoint(server: Server) -> None:
    # Given the line `pingpost serve` printed for another shell
    exports = server.exports()
    assert exports["AWS_ENDPOINT_URL"] == server.aws
    assert exports["AWS_ACCESS_KEY_ID"] == "testing"  # a placeholder, never the caller's

    # When a lead is pinged, and `pingpost lead show` runs with those variables
    lead_id = get(server, "/ping", complete("ping"))["lead_id"]
    assert lead_id is not None
    shown = server.pingpost("lead", "show", lead_id)

    # Then it shows that lead
    assert shown.returncode == 0, shown.stderr
    assert f"Lead {lead_id}  vendor demo  status pinged" in shown.stdout

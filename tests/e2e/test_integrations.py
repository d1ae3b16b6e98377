"""Publishers' own integrations, ported to Python, against `pingpost serve` over HTTP.

Each test sends what one kind of publisher code sends (door, body bytes, Content-Type) and
reads the answer the way that code reads it; only the host differs from the hosted API's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from lxml import etree

from tests.conftest import Server
from tests.e2e.test_http import lead, reply, xml_request
from tests.leads import complete

pytestmark = pytest.mark.e2e

TIMEOUT = 30
FORM = "application/x-www-form-urlencoded"
JSON_ANSWER = "application/json; charset=UTF-8"
XML_ANSWER = "application/xml; charset=UTF-8"


def php_json_encode(value: Any) -> bytes:
    """PHP's json_encode with default flags: compact, non-ASCII as \\uXXXX, "/" as "\\/"."""
    return json.dumps(value, separators=(",", ":")).replace("/", "\\/").encode()


def js_stringify(value: Any) -> bytes:
    """JavaScript's JSON.stringify, sent as UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def json_answer(response: requests.Response) -> Any:
    """The body as a JSON client reads it, after checking it was labelled as JSON."""
    assert response.headers["Content-Type"] == JSON_ANSWER, response.text
    return response.json()


def dom_parser(response: requests.Response) -> etree._Element:
    """`new DOMParser().parseFromString(await response.text(), "application/xml")`."""
    assert response.headers["Content-Type"] == XML_ANSWER, response.text
    return etree.fromstring(response.content)


def query_selector(document: etree._Element, tag: str) -> str | None:
    """`document.querySelector(tag)?.textContent`."""
    return next((node.text for node in document.iter(tag)), None)


def assert_sold_once(server: Server, lead_id: str | None) -> dict[str, Any]:
    stored = lead(server, lead_id)
    assert stored["status"] == "sold"
    assert len(stored["sold_to"]) == 1
    return stored


def test_php_curl_posting_json_encode_to_new_api_with_format_json(server: Server) -> None:
    # PHP with curl: CURLOPT_POSTFIELDS => json_encode(['Request' => $lead]), a string, so curl
    # labels it application/x-www-form-urlencoded; the answer is json_decode($out, true) and
    # the code checks $r['response']['status'] == 'Matched', then posts with its lead_id.
    url = server.url + "/new_api/api.php"

    def curl_exec(php_lead: dict[str, Any]) -> requests.Response:
        return requests.post(
            url,
            data=php_json_encode({"Request": php_lead}),
            headers={"Content-Type": FORM, "Accept": "*/*"},
            timeout=TIMEOUT,
        )

    ping = curl_exec(complete("ping", Format="JSON") | {"TYPE": 7})
    assert ping.status_code == 200, ping.text
    r = json_answer(ping)
    assert r["response"]["status"] == "Matched"
    lead_id = r["response"]["lead_id"]
    assert isinstance(lead_id, str) and lead_id.isdigit()
    assert r == {"response": {"status": "Matched", "lead_id": lead_id}}

    # json_encode escapes "/" and writes "é" as \u00e9: the stored lead has them as sent.
    landing = "https://www.example.com/roofing/quote?step=2"
    post = curl_exec(
        complete("post", Format="JSON", Lead_ID=lead_id, Landing_Page=landing, First_Name="José")
    )
    assert post.status_code == 200, post.text
    assert json_answer(post) == {"response": {"status": "Matched", "lead_id": lead_id}}
    stored = assert_sold_once(server, lead_id)
    assert (stored["data"]["Landing_Page"], stored["data"]["First_Name"]) == (landing, "José")


def http_build_query_post(server: Server, php_lead: dict[str, str]) -> etree._Element:
    """PHP's curl posting http_build_query($lead) to /new_api/api.php, the answer read with
    simplexml_load_string (after checking it is a 200)."""
    response = requests.post(
        server.url + "/new_api/api.php",
        data=urlencode(php_lead),
        headers={"Content-Type": FORM, "Accept": "*/*"},
        timeout=TIMEOUT,
    )
    answer = reply(response)
    assert answer.status == 200, answer.body
    return answer.xml


def test_php_http_build_query_form_to_new_api_parsed_with_simplexml(server: Server) -> None:
    # PHP with curl: CURLOPT_POSTFIELDS => http_build_query($lead) (form fields, spaces as "+"),
    # the answer read with simplexml_load_string() and (string) $xml->status / $xml->lead_id.
    xml = http_build_query_post(server, complete("ping"))
    assert xml.tag == "response"
    assert xml.findtext("status") == "Matched"
    lead_id = xml.findtext("lead_id")
    assert lead_id and lead_id.isdigit()

    xml = http_build_query_post(server, complete("post", Lead_ID=lead_id))
    assert (xml.findtext("status"), xml.findtext("lead_id")) == ("Matched", lead_id)
    stored = assert_sold_once(server, lead_id)
    assert stored["data"]["Address"] == "123 Main St."  # "+" read back as a space


def test_browser_fetch_json_stringify_to_api_json_read_with_dom_parser(server: Server) -> None:
    # Browser JavaScript on the publisher's form: fetch('/apiJSON.php', {method: 'POST',
    # body: JSON.stringify({Request: lead})}); a string body is labelled text/plain;charset=UTF-8
    # and no Format is sent, so the answer is the spec's XML, read with DOMParser.
    headers = {"Content-Type": "text/plain;charset=UTF-8", "Accept": "*/*"}

    def fetch(browser_lead: dict[str, str]) -> requests.Response:
        return requests.post(
            server.url + "/apiJSON.php",
            data=js_stringify({"Request": browser_lead}),
            headers=headers,
            timeout=TIMEOUT,
        )

    ping = fetch(complete("ping"))
    assert ping.status_code == 200, ping.text
    doc = dom_parser(ping)
    assert query_selector(doc, "status") == "Matched"
    lead_id = query_selector(doc, "lead_id")
    assert lead_id and lead_id.isdigit()

    post = fetch(complete("post", Lead_ID=lead_id, Last_Name="Ñúñez"))
    assert post.status_code == 200, post.text
    doc = dom_parser(post)
    assert (query_selector(doc, "status"), query_selector(doc, "lead_id")) == ("Matched", lead_id)
    assert assert_sold_once(server, lead_id)["data"]["Last_Name"] == "Ñúñez"


def test_node_fetch_application_json_full_mode_with_json_numbers(server: Server) -> None:
    # TypeScript on Node: fetch(`${base}/new_api/apiJSON.php`, {method: "POST", headers:
    # {"Content-Type": "application/json"}, body: JSON.stringify({Request: lead})}) in full mode,
    # its typed lead holding numbers as numbers, Lead_ID: "" and Test_Lead: false; then
    # (await res.json()).response.status.
    fields = complete("full")
    node_lead: dict[str, Any] = fields | {
        "TYPE": 7,
        "Zip": 60610,
        "Score": 12,
        "Home_Phone": int(fields["Home_Phone"]),
        "Lead_ID": "",
        "Test_Lead": False,
        "Format": "JSON",
    }
    res = requests.post(
        server.url + "/new_api/apiJSON.php",
        data=js_stringify({"Request": node_lead}),
        headers={"Content-Type": "application/json", "Accept": "*/*"},
        timeout=TIMEOUT,
    )
    assert res.status_code == 200, res.text
    data = json_answer(res)
    assert data["response"]["status"] == "Matched"
    lead_id = data["response"]["lead_id"]
    assert isinstance(lead_id, str) and lead_id.isdigit()
    assert data == {"response": {"status": "Matched", "lead_id": lead_id}}
    stored = assert_sold_once(server, lead_id)
    assert stored["test"] is False
    assert (stored["data"]["Zip"], stored["data"]["Score"]) == ("60610", "12")
    assert stored["data"]["Home_Phone"] == fields["Home_Phone"]


def test_python_requests_json_to_api_json_with_format_in_the_query(server: Server) -> None:
    # Python: requests.post(f"{base}/apiJSON.php?Format=JSON", json={"Request": lead}),
    # then r.json()["response"]["status"] and ["lead_id"] for the post.
    url = server.url + "/apiJSON.php?Format=JSON"

    ping = requests.post(url, json={"Request": complete("ping")}, timeout=TIMEOUT)
    assert ping.status_code == 200, ping.text
    answer = json_answer(ping)["response"]
    assert answer["status"] == "Matched"
    lead_id = answer["lead_id"]
    assert isinstance(lead_id, str) and lead_id.isdigit()

    post = requests.post(url, json={"Request": complete("post", Lead_ID=lead_id)}, timeout=TIMEOUT)
    assert post.status_code == 200, post.text
    assert json_answer(post) == {"response": {"status": "Matched", "lead_id": lead_id}}
    assert_sold_once(server, lead_id)


@pytest.mark.parametrize("path", ["/api.php", "/XMLapi.php", "/new_api/apiXML.php"])
def test_xml_request_posted_as_text_xml(server: Server, path: str) -> None:
    # Integrations of the spec's XML <Request> (control tags at the top, the lead in <Data>),
    # posted with Content-Type: text/xml to whichever door their code names.
    def post_xml(fields: dict[str, str]) -> etree._Element:
        response = requests.post(
            server.url + path,
            data=xml_request(fields),
            headers={"Content-Type": "text/xml"},
            timeout=TIMEOUT,
        )
        answer = reply(response)
        assert answer.status == 200, answer.body
        return answer.xml

    ping_then_post(server, post_xml)


def ping_then_post(server: Server, send: Callable[[dict[str, str]], etree._Element]) -> None:
    """Ping with `send`, post the lead it answered with `send`: both Matched, sold once."""
    ping = send(complete("ping"))
    assert ping.findtext("status") == "Matched"
    lead_id = ping.findtext("lead_id")
    assert lead_id and lead_id.isdigit()

    post = send(complete("post", Lead_ID=lead_id))
    assert (post.findtext("status"), post.findtext("lead_id")) == ("Matched", lead_id)
    assert_sold_once(server, lead_id)


def test_every_field_in_the_query_string_of_an_empty_post(server: Server) -> None:
    # Integrations that build the whole lead into the URL, as for a GET, but send it as a POST
    # with nothing in the body (PHP curl: CURLOPT_URL => "$url?" . http_build_query($lead),
    # CURLOPT_POST => true, CURLOPT_POSTFIELDS => '').
    def post_query(fields: dict[str, str]) -> etree._Element:
        response = requests.post(
            f"{server.url}/new_api/api.php?{urlencode(fields)}",
            data=b"",
            headers={"Content-Type": FORM, "Content-Length": "0"},
            timeout=TIMEOUT,
        )
        answer = reply(response)
        assert answer.status == 200, answer.body
        return answer.xml

    ping_then_post(server, post_query)


def test_json_client_missing_a_required_field_gets_a_json_400(server: Server) -> None:
    # A JSON integration (Format=JSON in its JSON) that leaves out a required field reads the
    # error where it reads every answer: response.status and response.error.
    fields = complete("full", First_Name="") | {"Format": "JSON"}
    response = requests.post(
        server.url + "/new_api/apiJSON.php", json={"Request": fields}, timeout=TIMEOUT
    )
    assert response.status_code == 400, response.text
    assert json_answer(response) == {
        "response": {"status": "Error", "error": "Required value First_Name is missing"}
    }


def test_json_client_with_an_unknown_key_gets_a_json_401(server: Server) -> None:
    # The PHP json_encode integration of the first test, with a Key no vendor has.
    fields = complete("ping", Key="not-a-vendor-key-0123456789", Format="JSON")
    response = requests.post(
        server.url + "/new_api/api.php",
        data=php_json_encode({"Request": fields}),
        headers={"Content-Type": FORM, "Accept": "*/*"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401, response.text
    assert json_answer(response) == {"response": {"status": "Error", "error": "Invalid Key"}}


def test_php_http_build_query_of_an_auto_insurance_lead_read_with_simplexml(
    server: Server,
) -> None:
    # An auto insurance publisher's PHP: the lead's numbered driver and vehicle fields as
    # http_build_query($lead) to /new_api/api.php, the answer read with simplexml_load_string;
    # its ping sends no personal data, its post each driver's contact fields.
    from tests.e2e.test_leadtypes_http import AUTO_KEY

    ping = {
        "Key": AUTO_KEY, "API_Action": "pingPostLead", "Mode": "ping", "TYPE": "20",
        "Driver_1_Zip": "60610", "Driver_1_Birthdate": "1980-12-23", "Driver_1_Age": "44",
        "Driver_1_Gender": "Male", "Driver_1_Marital_Status": "Married",
        "Driver_1_Credit_Rating": "Good", "Driver_2_Birthdate": "06/01/1982",
        "Driver_1_Incident_Type_1": "Speeding Ticket", "Driver_1_At_Fault_1": "Yes",
        "Vehicle_1_Year": "2019", "Vehicle_1_Make": "Toyota", "Vehicle_1_Model": "Camry",
        "Vehicle_1_Coverage_Type": "Standard",
        "LeadiD_Token": "B5A1C3D2-7E4F-4A9B-8C6D-1E2F3A4B5C6D",
    }  # fmt: skip
    xml = http_build_query_post(server, ping)
    assert xml.findtext("status") == "Matched"
    lead_id = xml.findtext("lead_id") or ""
    post = {
        "Key": AUTO_KEY, "API_Action": "pingPostLead", "Mode": "post", "TYPE": "20",
        "Lead_ID": lead_id, "IP_Address": "75.2.92.149", "Driver_1_City": "Chicago",
        "Driver_1_First_Name": "Ann", "Driver_1_Last_Name": "Lee",
        "Driver_1_Address": "2 Elm St.", "Driver_1_Daytime_Phone": "(312) 555-0166",
        "Driver_1_Email": "ann.lee@example.com",
    }  # fmt: skip
    xml = http_build_query_post(server, post)
    assert (xml.findtext("status"), xml.findtext("lead_id")) == ("Matched", lead_id)
    stored = assert_sold_once(server, lead_id)
    assert stored["data"]["Driver_1_Daytime_Phone"] == "3125550166"
    assert stored["data"]["Driver_2_Birthdate"] == "06/01/1982"
    assert stored["consent"]["leadid_token"] == ping["LeadiD_Token"]

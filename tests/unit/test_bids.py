"""Buyers that bid: what they are sent, and their answers read by settings alone.

Each buyer below is configured as an operator would, for the answer shapes real buyers publish
(JSON, XML with and without a namespace, form-encoded; tokens under other names in the post).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from pingpost.bids import BAD_ANSWER, BID, NO_BID, accepted, bid_fields, offer, post_fields, read
from pingpost.endpoints import BidEndpoint
from pingpost.fields import BY_NAME, FIELDS
from pingpost.models import Partner
from tests.leads import complete

JSON = "application/json"
XML = "application/xml"


def bidder(bid: dict[str, Any], post: dict[str, Any], **fields: Any) -> Partner:
    """A partner that bids, with a floor of 1."""
    return Partner.model_validate(
        {
            "id": 77,
            "price": 1,
            "bid": {"url": "https://buyer.example/ping"} | bid,
            "post": {"url": "https://buyer.example/post"} | post,
        }
        | fields
    )


def said(partner: Partner, answer: Any, status: int = 200, content_type: str = JSON) -> Any:
    body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
    return offer(partner, status, body, content_type)


AUTO = bidder(
    {
        "answer": {"accepted": "status", "price": "price", "token": "bid_id", "reason": "reason"},
        "accepted_values": ["bid"],
    },
    {"answer": {"accepted": "status", "reason": "reason"}, "accepted_values": ["accepted"]}
    | {"token_field": "bid_id"},
)


def test_an_auto_insurance_buyer_in_json() -> None:
    bid = said(AUTO, {"status": "bid", "bid_id": "660f9500-e29b", "price": "4.20"})
    assert (bid.outcome, bid.price, bid.token) == (BID, Decimal("4.20"), "660f9500-e29b")
    declined = said(AUTO, {"status": "decline", "reason": "no_bid", "message": "not today"})
    assert (declined.outcome, declined.reason) == (NO_BID, "no_bid")
    # Errors: 400 and 401 with a body, 429 and 5xx "try later"
    error = {"status": "error", "errors": ["'state_abbreviation' is required"]}
    errors = AUTO.model_copy(deep=True)
    assert errors.bid is not None
    errors.bid.answer.reason = "reason|errors"
    assert said(errors, error, 400).reason == "HTTP 400: 'state_abbreviation' is required"
    assert said(AUTO, {"status": "error"}, 429).reason == "HTTP 429 (try later)"
    assert said(AUTO, b"<html>busy</html>", 503, "text/html").reason == "HTTP 503 (try later)"
    # The post carries the token back as bid_id; a rejection keeps its reason
    fields = post_fields(AUTO, 5, {"Zip": "60610"}, bid, test=False)
    assert fields["bid_id"] == "660f9500-e29b" and fields["Lead_ID"] == "5"
    ok = json.dumps({"status": "accepted", "bid_id": "660f9500-e29b"}).encode()
    assert accepted(AUTO, 200, ok, JSON) is None
    rejected = json.dumps({"status": "rejected", "reason": "duplicate_phone"}).encode()
    assert accepted(AUTO, 200, rejected, JSON) == "duplicate_phone"


MARKETPLACE_JSON = bidder(
    {
        "answer": {
            "accepted": "Success",
            "price": "Payout",
            "token": "TransactionId",
            "reason": "Errors|Message",
        }
    },
    {"answer": {"accepted": "Sold", "reason": "Errors"}, "token_field": "TransactionId"},
)
MARKETPLACE_XML = bidder(
    {
        "answer": {
            "accepted": "/Result/Success",
            "price": "/Result/Payout",
            "token": "/Result/TransactionId",
            "reason": "/Result/Errors/string",
        }
    },
    {"answer": {"accepted": "//Sold"}, "token_field": "TransactionId"},
)


def test_a_marketplace_buyer_in_json_or_in_xml_with_or_without_a_namespace() -> None:
    answer = {
        "TransactionId": "D0447C7B",
        "Success": True,
        "Payout": 8.5,
        "Message": None,
        "Errors": None,
    }
    bid = said(MARKETPLACE_JSON, answer)
    assert (bid.outcome, bid.price, bid.token) == (BID, Decimal("8.5"), "D0447C7B")
    refused = answer | {"Success": False, "Payout": None, "Errors": ["'Sinks' must not be empty."]}
    assert said(MARKETPLACE_JSON, refused).reason == "'Sinks' must not be empty."
    for namespace in ("", ' xmlns="http://buyer.example/api"'):
        xml = (
            f"<Result{namespace}><TransactionId>D0447C7B</TransactionId>"
            "<Success>true</Success><Payout>8.50</Payout></Result>"
        )
        bid = said(MARKETPLACE_XML, xml.encode(), content_type=XML)
        assert (bid.outcome, bid.price, bid.token) == (BID, Decimal("8.50"), "D0447C7B")
        none = (
            f"<Result{namespace}><Success>false</Success><Payout/><Errors><string>no</string>"
            "<string>coverage</string></Errors></Result>"
        )
        refused = said(MARKETPLACE_XML, none.encode(), content_type=XML)
        assert (refused.outcome, refused.reason) == (NO_BID, "no; coverage")
        sold = f"<Result{namespace}><Sold>true</Sold></Result>".encode()
        assert accepted(MARKETPLACE_XML, 200, sold, XML) is None


MORTGAGE = bidder(
    {
        "format": "form",
        "answer": {
            "accepted": "/PingResponse/Response",
            "price": "/PingResponse/Price",
            "token": "/PingResponse/Ping_Id",
            "reason": "/PingResponse/Reason",
        },
    },
    {
        "format": "form",
        "answer": {"accepted": "/PostResponse/Response", "reason": "//Reason | //Errors/Error"},
        "token_field": "ping_id",
    },
)


def test_a_mortgage_buyer_answering_xml_to_form_requests() -> None:
    ping = (
        b"<PingResponse><Response>ACCEPTED</Response><Ping_Id>111111222333</Ping_Id>"
        b"<Price>21.105</Price></PingResponse>"
    )
    bid = said(MORTGAGE, ping, content_type="text/xml")
    # Three decimals: taken to the cent below, never more than the buyer bid
    assert (bid.outcome, bid.price, bid.token) == (BID, Decimal("21.10"), "111111222333")
    none = b"<PingResponse><Response>REJECTED</Response><Reason>No Coverage</Reason></PingResponse>"
    assert said(MORTGAGE, none, content_type="text/xml").reason == "No Coverage"
    assert post_fields(MORTGAGE, 9, {}, bid, test=False)["ping_id"] == "111111222333"
    sold = b"<PostResponse><Response>ACCEPTED</Response><Price>1.00</Price></PostResponse>"
    assert accepted(MORTGAGE, 200, sold) is None
    duplicate = b"<PostResponse><Response>REJECTED</Response><Reason>Duplicate lead</Reason>"
    assert accepted(MORTGAGE, 200, duplicate + b"</PostResponse>") == "Duplicate lead"
    invalid = b"<PostResponse><Errors><Error>email is invalid</Error></Errors></PostResponse>"
    assert accepted(MORTGAGE, 200, invalid) == "email is invalid"


EXCHANGE = bidder(
    {
        "format": "form",
        "static": {"Key": "k", "API_Action": "pingPostLead", "Mode": "ping", "TYPE": "7"}
        | {"Return_Best_Price": "1"},
        "answer": {
            "accepted": "/response/status",
            "price": "/response/price",
            "token": "/response/lead_id",
            "reason": "/response/error",
        },
        "accepted_values": ["Matched"],
    },
    {
        "format": "form",
        "static": {"Key": "k", "API_Action": "pingPostLead", "Mode": "post", "TYPE": "7"},
        "answer": {"accepted": "/response/status", "reason": "/response/error"},
        "accepted_values": ["Matched"],
        "token_field": "Lead_ID",
    },
)


def test_another_pingpostlead_exchange_as_the_buyer() -> None:
    matched = (
        b"<response><status>Matched</status><lead_id>21777961</lead_id><price>6.66</price>"
        b"</response>"
    )
    bid = said(EXCHANGE, matched, content_type=XML)
    assert (bid.outcome, bid.price, bid.token) == (BID, Decimal("6.66"), "21777961")
    unmatched = b"<response><status>Unmatched</status><lead_id>39735</lead_id></response>"
    assert said(EXCHANGE, unmatched, content_type=XML).outcome == NO_BID
    error = b"<response><status>Error</status><error>Duplicate lead - phone</error></response>"
    assert said(EXCHANGE, error, 400, XML).reason == "HTTP 400: Duplicate lead - phone"
    # Its ping and post are the API's own, the token going back as Lead_ID
    assert bid_fields(EXCHANGE, {"Zip": "60610"}, test=False)["Mode"] == "ping"
    posted = post_fields(EXCHANGE, 3, {"Zip": "60610"}, bid, test=False)
    assert (posted["Mode"], posted["Lead_ID"]) == ("post", "21777961")
    assert accepted(EXCHANGE, 200, matched) is None
    assert accepted(EXCHANGE, 200, unmatched) == "rejected"


def test_a_hosted_tracking_buyer_with_errors_as_objects() -> None:
    buyer = bidder(
        {
            "answer": {
                "accepted": "result",
                "price": "price",
                "token": "ping_id",
                "reason": "errors|msg",
            }
        },
        {"answer": {"accepted": "result", "reason": "errors|msg"}, "token_field": "lp_ping_id"},
    )
    bid = said(buyer, {"result": "success", "ping_id": "p-1", "price": 12.5, "msg": "ok"})
    assert (bid.outcome, bid.price, bid.token) == (BID, Decimal("12.5"), "p-1")
    failed = {"result": "failed", "errors": [{"field": "zip", "error": "invalid"}]}
    assert said(buyer, failed).reason == "zip: invalid"
    assert post_fields(buyer, 1, {}, bid, test=False)["lp_ping_id"] == "p-1"
    unprocessable = json.dumps({"result": "failed", "msg": "duplicate"}).encode()
    assert accepted(buyer, 422, unprocessable, JSON) == "HTTP 422: duplicate"


def test_attributes_and_carried_values() -> None:
    buyer = bidder(
        {"answer": {"accepted": "/Ping/@status", "price": "/Ping/@price", "token": "/Ping/@id"}},
        {"token_field": "id", "carry": {"quote": "/Ping/Quote", "tier": "/Ping/@tier"}},
    )
    answer = b'<Ping status="Yes" price="3.5" id="a7" tier="gold"><Quote>Q-9</Quote></Ping>'
    bid = said(buyer, answer, content_type=XML)
    assert (bid.outcome, bid.price, bid.token) == (BID, Decimal("3.5"), "a7")
    assert bid.carried == {"quote": "Q-9", "tier": "gold"}
    posted = post_fields(buyer, 1, {}, bid, test=False)
    assert (posted["id"], posted["quote"], posted["tier"]) == ("a7", "Q-9", "gold")


FLAT = bidder(
    {"answer": {"price": "price", "token": "token"}}, {"answer": {}, "token_field": "token"}
)


@pytest.mark.parametrize(
    ("answer", "outcome", "price"),
    [
        ({"price": 12, "token": "t"}, BID, Decimal(12)),
        ({"price": "4.200", "token": "t"}, BID, Decimal("4.200")),
        ({"price": "0.00", "token": "t"}, NO_BID, None),
        ({"price": 0, "token": "t"}, NO_BID, None),
        ({"price": None, "token": "t"}, NO_BID, None),
        ({"token": "t"}, NO_BID, None),
        ({"price": "", "token": "t"}, NO_BID, None),
        ({"price": "twelve", "token": "t"}, BAD_ANSWER, None),
        ({"price": "-3", "token": "t"}, BAD_ANSWER, None),
        ({"price": "NaN", "token": "t"}, BAD_ANSWER, None),
        ({"price": "Infinity", "token": "t"}, BAD_ANSWER, None),
        ({"price": True, "token": "t"}, BAD_ANSWER, None),
        ({"price": [1, 2], "token": "t"}, BAD_ANSWER, None),
        ({"price": "1E+30", "token": "t"}, BAD_ANSWER, None),
        ({"price": 1e200, "token": "t"}, BAD_ANSWER, None),
        ({"price": "9999999999.99", "token": "t"}, BID, Decimal("9999999999.99")),
        ({"price": "10.0000000000000000000000000000000000001", "token": "t"}, BID, Decimal(10)),
        ({"price": "0.004", "token": "t"}, NO_BID, None),  # less than a cent
        ({"price": 5, "token": "a\u202eb"}, BAD_ANSWER, None),  # a bidi override
        ({"price": 5, "token": "a\ufffeb"}, BAD_ANSWER, None),  # a noncharacter
        ({"price": 5, "token": "a\udfffb"}, BAD_ANSWER, None),  # a lone surrogate
        ({"price": {"amount": 3}, "token": "t"}, BAD_ANSWER, None),
        ({"price": 5}, BAD_ANSWER, None),  # a bid without the token its post needs
        ({"price": 5, "token": "x" * 257}, BAD_ANSWER, None),
        ({"price": 5, "token": "x" * 256}, BID, Decimal(5)),
        ({"price": 5, "token": "a\nb"}, BAD_ANSWER, None),
        ({"price": 5, "token": "a\x00b"}, BAD_ANSWER, None),
        ({"price": 5, "token": 123456}, BID, Decimal(5)),
    ],
)
def test_prices_and_tokens(answer: dict[str, Any], outcome: str, price: Decimal | None) -> None:
    found = said(FLAT, answer)
    assert (found.outcome, found.price) == (outcome, price), found


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", JSON),
        (b"<unclosed>", XML),
        (b"\xff\xfe", "text/plain"),
    ],
)
def test_an_answer_that_cannot_be_read_is_a_bad_answer(body: bytes, content_type: str) -> None:
    assert said(FLAT, body, content_type=content_type).outcome == BAD_ANSWER


def test_entities_of_an_xml_answer_are_not_expanded() -> None:
    buyer = bidder({"answer": {"price": "/d/price"}}, {"answer": {}})
    answer = b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "5">]><d><price>&e;</price></d>'
    found = said(buyer, answer, content_type=XML)
    assert found.outcome != BID and found.price is None


def test_accepted_words_hold_in_any_case_and_an_endpoint_may_name_its_own() -> None:
    buyer = bidder(
        {"answer": {"accepted": "ok", "price": "price"}},
        {"answer": {}},
    )
    for word in ("true", "1", "yes", "ACCEPTED", "Success", True, 1):
        assert said(buyer, {"ok": word, "price": 2}).outcome == BID, word
    for word in ("false", "0", "no", "bid", "", None, False):
        assert said(buyer, {"ok": word, "price": 2}).outcome == NO_BID, word
    assert buyer.bid is not None
    buyer.bid.accepted_values = ["bid", "OK"]
    assert said(buyer, {"ok": "ok", "price": 2}).outcome == BID
    assert said(buyer, {"ok": "true", "price": 2}).outcome == NO_BID


def test_a_form_encoded_answer_is_read_by_field_names() -> None:
    buyer = bidder(
        {"answer": {"accepted": "result", "price": "amount", "token": "id", "reason": "why"}},
        {"answer": {}, "token_field": "id"},
    )
    bid = said(buyer, b"result=ACCEPTED&amount=7.25&id=z9", content_type="text/plain")
    assert (bid.outcome, bid.price, bid.token) == (BID, Decimal("7.25"), "z9")
    assert said(buyer, b"result=no&why=closed", content_type="").reason == "closed"


def test_a_bid_request_carries_no_personal_data() -> None:
    lead = complete("full", Cell_Phone="3125559682", Comments="call after 5")
    lead |= {
        "Trusted_Form_URL": "https://cert.trustedform.com/0123456789abcdef",
        "LeadiD_Token": "01234567-89AB-CDEF-0123-456789ABCDEF",
        "HTTP_User_Agent": "Mozilla/5.0",
        "TCPA_Consent": "Yes",
    }
    data = {k: v for k, v in lead.items() if k in BY_NAME}
    sent = bid_fields(FLAT, data, test=True)
    # The consent evidence that leads to the consumer stays; whether they consented goes
    identifying = {"Trusted_Form_URL", "LeadiD_Token", "HTTP_User_Agent", "Landing_Page"}
    assert not identifying & set(sent) and sent["TCPA_Consent"] == "Yes"
    personal = {f.name for f in FIELDS if f.pii}
    assert {"First_Name", "Last_Name", "Address", "Email", "Home_Phone", "IP_Address"} <= personal
    assert not personal & set(sent)
    assert not {v for k, v in data.items() if k in personal} & set(sent.values())
    assert sent["Zip"] == data["Zip"] and sent["Test_Lead"] == "1"
    # Renamed and completed as the buyer asks: only the fields it names, and its own
    renaming = bidder(
        {"fields": {"Zip": "zip_code", "Email": "email"}, "static": {"source": "x1"}},
        {},
    )
    assert bid_fields(renaming, data, test=False) == {"zip_code": data["Zip"], "source": "x1"}
    # The post carries the whole lead
    posted = post_fields(FLAT, 4, data, said(FLAT, {"price": 5, "token": "t"}), test=False)
    assert posted["Email"] == data["Email"] and posted["token"] == "t"


def test_settings_are_checked_when_a_partner_is_written() -> None:
    with pytest.raises(ValidationError, match="both"):
        Partner.model_validate({"id": 1, "price": 1, "bid": {"url": "https://b.example/p"}})
    with pytest.raises(ValidationError, match="bid needs a url"):
        Partner.model_validate({"id": 1, "price": 1, "bid": {}, "post": {"url": "https://x.y/"}})
    with pytest.raises(ValidationError, match="url must be an http"):
        BidEndpoint.model_validate({"url": "ftp://b.example/p"})
    with pytest.raises(ValidationError, match="not lead fields"):
        BidEndpoint.model_validate({"url": "https://b.example/p", "fields": {"Zipp": "zip"}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        BidEndpoint.model_validate({"url": "https://b.example/p", "answer": {"prize": "p"}})
    assert BidEndpoint.model_validate({"url": "https://b.example/p"}).timeout == 0.3


def test_what_a_buyer_writes_is_kept_printable_and_short() -> None:
    declined = said(AUTO, {"status": "decline", "reason": "no\x1b[31m bid\udfff" + "x" * 65_000})
    assert declined.outcome == NO_BID
    assert declined.reason.startswith("no[31m bid") and len(declined.reason) == 200
    bad = said(FLAT, {"price": "y" * 65_000, "token": "t"})
    assert bad.outcome == BAD_ANSWER and len(bad.reason) < 80
    deep = b"[" * 100_000 + b"]" * 100_000
    assert said(FLAT, deep).outcome == BAD_ANSWER


def test_json_is_read_as_json_whatever_its_content_type_says() -> None:
    answer = {"status": "bid", "bid_id": "t1", "price": "4.20"}
    for content_type in ("text/html", "text/plain", "application/octet-stream", ""):
        assert said(AUTO, answer, content_type=content_type).price == Decimal("4.20")


def test_a_reading_of_an_unreadable_answer_says_why() -> None:
    assert FLAT.bid is not None
    assert read(FLAT.bid, b"{", JSON).problem == "the answer is not JSON"
    bad_path = FLAT.bid.model_copy(update={"answer": FLAT.bid.answer.model_copy()})
    bad_path.answer.price = "/a["
    assert "not an XPath" in read(bad_path, b"<a/>", XML).problem

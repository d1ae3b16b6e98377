"""Requests as publishers send them: query strings, forms, multipart and the spec's XML."""

from __future__ import annotations

import pytest

from pingpost.decoding import decode
from pingpost.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from pingpost.matching import HashedValue

LIMIT = 256 * 1024

# The XML structure of the specification, with values.
SPEC_XML = b"""<?xml version="1.0"?>
<Request>
  <Key>abc</Key>
  <API_Action>pingPostLead</API_Action>
  <Mode>post</Mode>
  <Cost></Cost>
  <Lead_ID>874</Lead_ID>
  <TYPE>7</TYPE>
  <Data>
    <First_Name>John</First_Name>
    <Last_Name>Doe &amp; Sons</Last_Name>
    <Comments><![CDATA[<b>call</b> after 5]]></Comments>
  </Data>
  <Matches>
    <Match ValueType="promotionCode" HashType="plain">test code</Match>
    <Match ValueType="promotionCode" HashType="plain">12345</Match>
  </Matches>
  <Match_With_Partner_Hashes>
    <Selected_Partner_Hash                               ValueType="company"
HashType="md5">ewd5692602fc4sa545e4feb0ew3964c5</Selected_Partner_Hash>
    <Selected_Partner_Hash                               HashType="md5"
ValueType="company">f26e492602fc4b4077feb0d80d3964c5</Selected_Partner_Hash>
  </Match_With_Partner_Hashes>
</Request>
"""


def test_query_string_repeated_name_keeps_the_last_like_php() -> None:
    request = decode(
        "/api.php", "GET", None, "Mode=ping&Mode=post&First_Name=J%C3%B6rg", b"", LIMIT
    )
    assert request.fields == {"Mode": "post", "First_Name": "Jörg"}


def test_form_post_merges_over_the_query_string() -> None:
    body = b"Mode=full&Last_Name=Doe+Jr."
    request = decode(
        "/api.php",
        "POST",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "Mode=ping",
        body,
        LIMIT,
    )
    assert request.fields == {"Mode": "full", "Last_Name": "Doe Jr."}


def test_multipart_form_data_as_php_curl_sends_an_array() -> None:
    boundary = "------------------------d74496d66958873e"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="Mode"\r\n\r\nping\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="Zip"\r\n\r\n60610\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    request = decode(
        "/api.php", "POST", f"multipart/form-data; boundary={boundary}", "", body, LIMIT
    )
    assert request.fields == {"Mode": "ping", "Zip": "60610"}


def test_the_spec_xml_request() -> None:
    request = decode("/apiXML.php", "POST", "text/xml", "", SPEC_XML, LIMIT)
    assert request.fields["Mode"] == "post"
    assert request.fields["Cost"] == ""
    assert request.fields["Last_Name"] == "Doe & Sons"
    assert request.fields["Comments"] == "<b>call</b> after 5"
    assert request.matches == (
        HashedValue("promotionCode", "plain", "test code"),
        HashedValue("promotionCode", "plain", "12345"),
    )
    assert [s.value for s in request.selected] == [
        "ewd5692602fc4sa545e4feb0ew3964c5",
        "f26e492602fc4b4077feb0d80d3964c5",
    ]


def test_xml_is_read_whatever_content_type_php_curl_gave_it() -> None:
    request = decode(
        "/apiXML.php", "POST", "application/x-www-form-urlencoded", "", SPEC_XML, LIMIT
    )
    assert request.fields["Lead_ID"] == "874"


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "boom">]><Request><Key>&x;</Key></Request>',
        b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><Request><Key>&x;</Key></Request>',
        b'<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><Request>&b;</Request>',
    ],
)
def test_doctype_and_entities_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as refused:
        decode("/apiXML.php", "POST", "text/xml", "", body, LIMIT)
    assert "DOCTYPE" in refused.value.message or "not well-formed" in refused.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<Request><Key>abc</Request>", "The XML request is not well-formed"),
        (b"<Lead><Key>abc</Key></Lead>", "The XML root element must be <Request>"),
        (b"", "The XML request is empty"),
        (
            b'<Request><Matches><Match ValueType="ssn" HashType="md5">x</Match></Matches>'
            b"</Request>",
            "Invalid Match: ValueType must be one of",
        ),
        (
            b'<Request><Match_With_Partner_Hashes><Selected_Partner_Hash ValueType="email" '
            b'HashType="plain">x</Selected_Partner_Hash></Match_With_Partner_Hashes></Request>',
            "Invalid Selected_Partner_Hash: HashType must be one of: sha1, md5",
        ),
    ],
)
def test_bad_xml_is_a_clear_error(body: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        decode("/apiXML.php", "POST", "text/xml", "", body, LIMIT)
    assert refused.value.message.startswith(message)


def test_a_body_over_the_limit_is_refused() -> None:
    with pytest.raises(PayloadTooLarge):
        decode("/api.php", "POST", "application/x-www-form-urlencoded", "", b"a" * 2048, 1024)


def test_api_php_does_not_read_json_or_xml() -> None:
    with pytest.raises(UnsupportedMediaType):
        decode("/api.php", "POST", "application/json", "", b'{"Mode": "ping"}', LIMIT)
    with pytest.raises(UnsupportedMediaType, match=r"apiXML\.php"):
        decode("/api.php", "POST", "text/xml", "", SPEC_XML, LIMIT)


def test_mode_routes_read_query_form_and_xml() -> None:
    assert decode("/ping", "GET", None, "Zip=60610", b"", LIMIT).fields == {"Zip": "60610"}
    form = decode("/ping", "POST", "application/x-www-form-urlencoded", "", b"Zip=60610", LIMIT)
    assert form.fields == {"Zip": "60610"}
    xml = decode("/post", "POST", "application/xml", "", SPEC_XML, LIMIT)
    assert xml.fields["Lead_ID"] == "874"


def test_invalid_utf8_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequest, match="UTF-8"):
        decode(
            "/api.php", "POST", "application/x-www-form-urlencoded", "", b"First_Name=\xff", LIMIT
        )

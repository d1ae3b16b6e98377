"""Requests as publishers send them: query strings, forms, multipart, the spec's XML, JSON."""

from __future__ import annotations

import pytest

from pingpost.decoding import Request, decode
from pingpost.errors import InvalidRequest, PayloadTooLarge
from pingpost.identity import HashedValue

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


def refusal(content_type: str, body: bytes, limit: int = LIMIT) -> str:
    """Why a body is refused: at once (unreadable), or once its Key and Format are known."""
    try:
        request = decode("POST", content_type, "", body, limit)
    except InvalidRequest as refused:
        return refused.message
    assert request.problems, request
    return "; ".join(request.problems)


def test_query_string_repeated_name_keeps_the_last_like_php() -> None:
    request = decode("GET", None, "Mode=ping&Mode=post&First_Name=J%C3%B6rg", b"", LIMIT)
    assert request.fields == {"Mode": "post", "First_Name": "Jörg"}


def test_form_post_merges_over_the_query_string() -> None:
    body = b"Mode=full&Last_Name=Doe+Jr."
    request = decode(
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
    request = decode("POST", f"multipart/form-data; boundary={boundary}", "", body, LIMIT)
    assert request.fields == {"Mode": "ping", "Zip": "60610"}


def multipart(*parts: str, boundary: str = "b0undary", end: str = "--\r\n") -> tuple[str, bytes]:
    """A multipart/form-data Content-Type and body of parts given as `headers\r\n\r\nvalue`."""
    body = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts) + f"--{boundary}{end}"
    return f"multipart/form-data; boundary={boundary}", body.encode()


def field_part(name: str, value: str, *headers: str) -> str:
    return "\r\n".join((f'Content-Disposition: form-data; name="{name}"', *headers, "", value))


def test_multipart_reads_quoted_names_encoded_parts_and_skips_files() -> None:
    content_type, body = multipart(
        'Content-Disposition: form-data; name="Say \\"hi\\""\r\n\r\nhello',
        field_part("Zip", "NjA2MTA=", "Content-Transfer-Encoding: base64"),
        'Content-Disposition: form-data; name="upload"; filename="a.txt"\r\n\r\nfile',
        "Content-Disposition: form-data; name=Mode;\r\n\r\nping",
        "Content-Type: text/plain\r\n\r\nno name",
    )
    request = decode("POST", content_type + ";", "", b"preamble\r\n" + body, LIMIT)
    assert request.fields == {'Say "hi"': "hello", "Zip": "60610", "Mode": "ping"}


def test_multipart_with_bare_line_feeds_is_read() -> None:
    _, body = multipart(field_part("Zip", "60610"), field_part("Mode", "ping"))
    request = decode(
        "POST", "multipart/form-data; boundary=b0undary", "", body.replace(b"\r", b""), LIMIT
    )
    assert request.fields == {"Zip": "60610", "Mode": "ping"}


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        (*multipart(field_part("Zip", "1"), end=""), "ends before its closing boundary"),
        ("multipart/form-data", multipart(field_part("Zip", "1"))[1], "boundary is missing"),
        (*multipart(field_part("Zip", "1"), boundary="other")[:1], b"Zip=1", "does not start"),
        (*multipart("Content-Disposition form-data\r\n\r\nv"), "header line without a name"),
        (*multipart('Content-Disposition: form-data; name="a'), "no blank line"),
    ],
)
def test_a_malformed_multipart_body_is_refused_with_what_is_wrong(
    content_type: str, body: bytes, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        decode("POST", content_type, "", body, LIMIT)


HOSTILE_PARAMETERS = "; a=b" * 40_000


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        # A 200 KB header of parameters took 10 s to parse; nested comments raised RecursionError.
        (
            [f'Content-Disposition: form-data; name="Zip"{HOSTILE_PARAMETERS}\r\n\r\n1'],
            "headers of a multipart part are over",
        ),
        ([f'Content-Disposition: form-data; name="Zip"; c={"(" * 120_000}\r\n\r\n1'], "over"),
        ([f'Content-Disposition: form-data; name="Zip"{"; a=b" * 100}\r\n\r\n1'], "over 8 param"),
        ([field_part(f"f{i}", "v") for i in range(4_000)], "Too many fields"),
    ],
    ids=["40000-parameters", "nested-comments", "100-parameters", "4000-parts"],
)
def test_hostile_multipart_is_refused_at_the_first_limit(parts: list[str], message: str) -> None:
    content_type, body = multipart(*parts)
    with pytest.raises(InvalidRequest, match=message):
        decode("POST", content_type, "", body, LIMIT)


def test_the_spec_xml_request() -> None:
    request = decode("POST", "text/xml", "", SPEC_XML, LIMIT)
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
    request = decode("POST", "application/x-www-form-urlencoded", "", SPEC_XML, LIMIT)
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
        decode("POST", "text/xml", "", body, LIMIT)
    assert "DOCTYPE" in refused.value.message or "not well-formed" in refused.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<Request><Key>abc</Request>", "The XML request is not well-formed"),
        (b"<Lead><Key>abc</Key></Lead>", "The XML root element must be <Request>"),
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
    assert refusal("text/xml", body).startswith(message)


def test_a_body_over_the_limit_is_refused() -> None:
    with pytest.raises(PayloadTooLarge):
        decode("POST", "application/x-www-form-urlencoded", "", b"a" * 2048, 1024)


def test_query_form_and_xml_are_read_alike() -> None:
    assert decode("GET", None, "Zip=60610", b"", LIMIT).fields == {"Zip": "60610"}
    form = decode("POST", "application/x-www-form-urlencoded", "", b"Zip=60610", LIMIT)
    assert form.fields == {"Zip": "60610"}
    xml = decode("POST", "application/xml", "", SPEC_XML, LIMIT)
    assert xml.fields["Lead_ID"] == "874"


def test_invalid_utf8_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequest, match="UTF-8"):
        decode("POST", "application/x-www-form-urlencoded", "", b"First_Name=\xff", LIMIT)


# What publishers' code sends: the same fields as JSON, under whatever label it gives the body.
JSON_REQUEST = {
    "Request": {
        "Key": "abc",
        "API_Action": "pingPostLead",
        "Mode": "full",
        "Lead_ID": "",
        "Zip": 60610,
        "Cost": 2.55,
        "Home_Phone": 3125556491,
        "Test_Lead": True,
        "Phone_Consent": True,
        "Need_Financing": False,
        "Comments": None,
        "Sub_ID": {},
    }
}


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "text/plain;charset=UTF-8",  # a browser fetch() of a string
        "application/x-www-form-urlencoded",  # PHP curl's default label on a JSON string
        None,
    ],
)
def test_json_is_read_whatever_its_label(content_type: str | None) -> None:
    import json

    request = decode("POST", content_type, "", json.dumps(JSON_REQUEST).encode(), LIMIT)
    assert request.fields == {
        "Key": "abc",
        "API_Action": "pingPostLead",
        "Mode": "full",
        "Lead_ID": "",
        "Zip": "60610",
        "Cost": "2.55",
        "Home_Phone": "3125556491",
        "Test_Lead": "1",
        "Phone_Consent": "Yes",
        "Need_Financing": "No",
        "Comments": "",
        "Sub_ID": "",
    }


def test_a_flat_json_object_and_a_data_object_are_read_like_xml() -> None:
    body = b'{"Key": "abc", "Mode": "ping", "Data": {"Zip": "60610"}}'
    assert decode("POST", "application/json", "Format=JSON", body, LIMIT).fields == {
        "Format": "JSON",
        "Key": "abc",
        "Mode": "ping",
        "Zip": "60610",
    }


def test_a_json_list_of_partner_ids_is_the_comma_delimited_list() -> None:
    body = b'{"Skip_Partner_ID": [142, "1543"], "Match_With_Partner_ID": []}'
    fields = decode("POST", "application/json", "", body, LIMIT).fields
    assert fields == {"Skip_Partner_ID": "142,1543", "Match_With_Partner_ID": ""}
    nested = refusal("application/json", b'{"Skip_Partner_ID": [[142]]}')
    assert nested.startswith("Invalid value for Skip_Partner_ID: must be text")


def test_numbers_keep_the_text_they_were_sent_as() -> None:
    body = b'{"Cost": 1e2, "Score": 12, "Huge": 123456789012345678901234567890123456789}'
    fields = decode("POST", "application/json", "", body, LIMIT).fields
    assert fields == {
        "Cost": "1e2",
        "Score": "12",
        "Huge": "123456789012345678901234567890123456789",
    }


@pytest.mark.parametrize(
    "matches",
    [
        # a list of objects
        [
            {"ValueType": "promotionCode", "HashType": "plain", "value": "test code"},
            {"ValueType": "promotionCode", "HashType": "plain", "value": "12345"},
        ],
        # xml2js
        {
            "Match": [
                {"_": "test code", "$": {"ValueType": "promotionCode", "HashType": "plain"}},
                {"_": "12345", "$": {"ValueType": "promotionCode", "HashType": "plain"}},
            ]
        },
        # fast-xml-parser
        {
            "Match": [
                {"#text": "test code", "@_ValueType": "promotionCode", "@_HashType": "plain"},
                {"#text": "12345", "@_ValueType": "promotionCode", "@_HashType": "plain"},
            ]
        },
        # PHP's json_encode of SimpleXML with attributes
        {
            "Match": [
                {"@attributes": {"ValueType": "promotionCode", "HashType": "plain"}, "value": v}
                for v in ("test code", "12345")
            ]
        },
    ],
)
def test_json_matches_take_the_shapes_of_the_xml_ones(matches: object) -> None:
    import json

    body = json.dumps({"Request": {"Key": "abc", "Matches": matches}}).encode()
    request = decode("POST", "application/json", "", body, LIMIT)
    assert request.matches == decode("POST", "text/xml", "", SPEC_XML, LIMIT).matches
    assert "Matches" not in request.fields


def test_json_selected_partner_hashes() -> None:
    body = (
        b'{"Match_With_Partner_Hashes": {"Selected_Partner_Hash": '
        b'{"@ValueType": "company", "@HashType": "md5", "#text": "f26e"}}}'
    )
    request = decode("POST", "application/json", "", body, LIMIT)
    assert request.selected == (HashedValue("company", "md5", "f26e"),)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "nested deeper than 8 levels"),
        (b'["Key", "abc"]', "must be an object of fields"),
        (b'{"a": ' * 10_000 + b"1" + b"}" * 10_000, "nested deeper than 8 levels"),
        (b'{"First_Name": "a", "First_Name": "b"}', "names First_Name twice"),
        (b'{"Cost": NaN}', "NaN is not a JSON number"),
        (b'{"Zip": 1e999999}', ""),  # kept as text: validation refuses it
        (b'{"First_Name": {"first": "John"}}', "Invalid value for First_Name: must be text"),
        (b'{"First_Name": ["John"]}', "not a list"),
        (b'{"First_Name": "J\xff"}', "not valid UTF-8"),
        (b'{"Key": "abc",}', "not well-formed"),
        (b"{" + b",".join(b'"f%d": 1' % i for i in range(100_000)) + b"}", "Too many fields"),
        (b'{"Matches": [{"ValueType": "ssn", "HashType": "md5", "value": "x"}]}', "ValueType"),
        (b'{"Matches": ["plain text"]}', "Invalid Match: each must be an object"),
        (b"hello", "neither XML, JSON nor form fields"),
    ],
)
def test_hostile_or_malformed_json_is_a_clear_error(body: bytes, message: str) -> None:
    if not message:
        assert decode("POST", "application/json", "", body, LIMIT).fields == {"Zip": "1e999999"}
        return
    assert message in refusal("application/json", body, 4 * 1024 * 1024)


def test_an_empty_body_reads_the_query_string_on_every_door() -> None:
    request = decode("POST", "text/xml", "Key=abc&Mode=ping", b"  \r\n", LIMIT)
    assert request.fields == {"Key": "abc", "Mode": "ping"}


def test_xml_with_a_byte_order_mark_is_xml() -> None:
    request = decode("POST", "application/json", "", b"\xef\xbb\xbf" + SPEC_XML, LIMIT)
    assert request.fields["Lead_ID"] == "874"


def test_problems_of_a_readable_body_wait_for_its_key_and_format() -> None:
    body = b'{"Key": "abc", "Format": "JSON", "Zip": "1", "Zip": "2", "Score": {"a": 1}}'
    request = decode("POST", "application/json", "", body, LIMIT)
    assert request.fields == {"Key": "abc", "Format": "JSON", "Zip": "2"}
    assert request.problems == (
        "The JSON request names Zip twice",
        "Invalid value for Score: must be text, a number or true/false, not an object",
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"\\u0001": 1, "\\u0001": 2}',
        b'{"\\u0001": {"a": 1}}',
        b'{"\\ud800x": [1, 2]}',
    ],
)
def test_names_quoted_in_messages_are_printable(body: bytes) -> None:
    from pingpost.responses import error_xml

    message = refusal("application/json", body)
    assert message.isprintable()
    error_xml(message)  # an answer can carry it


def test_an_escaped_surrogate_pair_is_one_character() -> None:
    body = b'{"First_Name": "Jo \\ud83d\\ude00"}'
    assert decode("POST", "application/json", "", body, LIMIT).fields == {
        "First_Name": "Jo \U0001f600"
    }


def test_lone_surrogates_are_not_utf8() -> None:
    assert refusal("application/json", b'{"First_Name": "Jo\\ud800hn"}') == (
        "The request is not valid UTF-8"
    )


def test_xml_converters_declaration_is_not_a_field() -> None:
    body = b'{"?xml": {"@version": "1.0"}, "#comment": "x", "Request": {"Key": "abc"}}'
    assert decode("POST", "application/json", "", body, LIMIT) == Request({"Key": "abc"})


def test_xml_declared_utf16_but_sent_as_utf8_is_read() -> None:
    body = b'<?xml version="1.0" encoding="utf-16"?><Request><Key>J\xc3\xb6rg</Key></Request>'
    assert decode("POST", "text/xml", "", body, LIMIT).fields == {"Key": "J\u00f6rg"}


def test_php_array_notation_of_partner_ids_is_one_list() -> None:
    query = "Skip_Partner_ID%5B%5D=142&Skip_Partner_ID%5B%5D=225&Match_With_Partner_ID%5B0%5D=7"
    assert decode("GET", None, query, b"", LIMIT).fields == {
        "Skip_Partner_ID": "142,225",
        "Match_With_Partner_ID": "7",
    }


def test_aliases_are_read_as_their_fields() -> None:
    body = b"xxTrustedFormCertUrl=https%3A%2F%2Fcert.trustedform.com%2Fabc&Universal_LeadiD=X-1"
    assert decode("POST", None, "LeadiD_Token=Y-2", body, LIMIT).fields == {
        "Trusted_Form_URL": "https://cert.trustedform.com/abc",
        "LeadiD_Token": "Y-2",  # the field itself wins over its alias
    }


def test_a_key_in_the_query_and_another_in_the_body_is_a_problem_not_a_guess() -> None:
    same = decode("POST", "application/x-www-form-urlencoded", "Key=abc", b"Key=abc&Zip=1", LIMIT)
    assert same.problems == ()
    differ = decode("POST", "application/x-www-form-urlencoded", "Key=abc", b"Key=xyz", LIMIT)
    assert differ.problems == (
        "Key is sent in the query string and in the body with different values",
    )
    assert decode("POST", None, "Key=abc", b"Zip=1", LIMIT).problems == ()


def test_multipart_edge_cases_browsers_and_scripts_produce() -> None:
    # Found by review: bare-LF headers with a CRLF blank line later in the value, a preamble
    # naming the boundary mid-line, and a file part named only by filename*.
    body = (
        b"preamble mentions --b0undary here\r\n"
        b'--b0undary\nContent-Disposition: form-data; name="Comments"\n\nline one\r\n\r\nline two'
        b"\r\n--b0undary\r\nContent-Disposition: form-data; name=\"f\"; filename*=UTF-8''a.bin"
        b"\r\n\r\n\xff\xfe\r\n--b0undary--\r\n"
    )
    request = decode("POST", "multipart/form-data; boundary=b0undary", "", body, LIMIT)
    assert request.fields == {"Comments": "line one\r\n\r\nline two"}

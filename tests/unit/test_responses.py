"""The XML answers, byte for byte as the specification's examples show them."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from pingpost.answers import Answer, Hash, money
from pingpost.responses import answer_xml, error_xml, stylesheet_xsl

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
PI = '<?xml-stylesheet type="text/xsl" href="response.xsl"?>\n'


def test_matched_with_price() -> None:
    # The spec's example, with the price written as every price is: two decimals.
    xml = answer_xml(Answer("Matched", 874, price=Decimal("25.00")), stylesheet=False)
    assert xml.decode() == DECLARATION + (
        "<response>\n  <status>Matched</status>\n  <lead_id>874</lead_id>\n"
        "  <price>25.00</price>\n</response>\n"
    )


def test_matched_with_allowed_times_sold() -> None:
    xml = answer_xml(Answer("Matched", 874, matches=5), stylesheet=False)
    assert xml.decode() == DECLARATION + (
        "<response>\n  <status>Matched</status>\n  <lead_id>874</lead_id>\n"
        "  <matches>5</matches>\n</response>\n"
    )


def test_matched_with_hashes() -> None:
    digest = "8561c83bb23a3f77345fa2b6b50b1f4e"
    answer = Answer("Matched", 348, hashes=(Hash("email", "md5", digest),) * 2)
    assert answer_xml(answer, stylesheet=False).decode() == DECLARATION + (
        "<response>\n  <status>Matched</status>\n  <lead_id>348</lead_id>\n  <hashes>\n"
        f'    <hash ValueType="email" HashType="md5">{digest}</hash>\n'
        f'    <hash ValueType="email" HashType="md5">{digest}</hash>\n'
        "  </hashes>\n</response>\n"
    )


def test_unmatched() -> None:
    assert answer_xml(Answer("Unmatched", 874), stylesheet=False).decode() == DECLARATION + (
        "<response>\n  <status>Unmatched</status>\n  <lead_id>874</lead_id>\n</response>\n"
    )


def test_error_escapes_its_message() -> None:
    assert error_xml("Required value First_Name is missing", stylesheet=False).decode() == (
        DECLARATION + "<response>\n  <status>Error</status>\n"
        "  <error>Required value First_Name is missing</error>\n</response>\n"
    )
    assert b"<error>a &lt;b&gt; &amp; c</error>" in error_xml("a <b> & c")


def test_the_stylesheet_instruction_comes_unless_skipped() -> None:
    assert answer_xml(Answer("Unmatched", 1)).decode().startswith(DECLARATION + PI)
    assert PI not in answer_xml(Answer("Unmatched", 1), stylesheet=False).decode()


def test_the_stylesheet_renders_an_answer_as_a_page() -> None:
    transform = etree.XSLT(etree.fromstring(stylesheet_xsl()))
    page = transform(etree.fromstring(answer_xml(Answer("Matched", 874, price=Decimal(25)))))
    assert page.xpath("string(//*[@id='status'])") == "Matched"
    assert page.xpath("string(//*[@id='lead_id'])") == "874"
    assert page.xpath("string(//*[@id='price'])") == "25.00"


def test_every_price_is_written_with_two_decimals() -> None:
    # Regression (review): prices were written two ways, 45 and 10 but 27.50 and 2.50.
    amounts = ("25", "45.0", "25.5", "2.55", "0.1", "0", "2.345", "1E+1")
    assert [money(Decimal(v)) for v in amounts] == [
        "25.00",
        "45.00",
        "25.50",
        "2.55",
        "0.10",
        "0.00",
        "2.35",
        "10.00",
    ]


def test_an_answer_survives_storage() -> None:
    answer = Answer("Matched", 9, Decimal("2.5"), 2, (Hash("phone", "sha1", "ab"),))
    assert Answer.restored(answer.stored()) == answer


CHROME = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_browsers_navigating_get_the_page_and_api_clients_the_xml() -> None:
    from pingpost.responses import wants_page

    assert wants_page(CHROME) and wants_page(FIREFOX)
    for api_client in (None, "", "*/*", "application/xml", "text/xml, */*", "text/html, */*"):
        assert not wants_page(api_client), api_client


def test_the_page_is_what_the_stylesheet_makes() -> None:
    from pingpost.responses import page

    html = page(error_xml("Required value First_Name is missing"))
    assert "<title>Lead Error</title>" in html
    assert '<dd id="error">Required value First_Name is missing</dd>' in html


def test_json_answers_hold_the_xml_elements_as_strings() -> None:
    import json

    from pingpost.answers import Contact

    answer = Answer(
        status="Matched",
        lead_id=874,
        price=Decimal("25.5"),
        matches=2,
        hashes=(Hash("email", "md5", "8561c83b"),),
        partners=(Contact("Roof Co", "3125550100"), Contact()),
    )
    assert json.loads(answer_xml(answer, as_json=True)) == {
        "response": {
            "status": "Matched",
            "lead_id": "874",
            "price": "25.50",
            "matches": "2",
            "hashes": [{"ValueType": "email", "HashType": "md5", "value": "8561c83b"}],
            "partners": [{"company": "Roof Co", "phone": "3125550100"}, {}],
        }
    }
    assert json.loads(error_xml("Invalid Key", as_json=True)) == {
        "response": {"status": "Error", "error": "Invalid Key"}
    }


def test_response_styles_shape_what_a_vendor_is_told() -> None:
    from pingpost.answers import Contact

    sold = Answer("Matched", 9, matches=1, partners=(Contact("Roof Co"),))
    assert sold.styled("short") == Answer("Matched", 9, matches=1)
    assert sold.styled("full") == sold
    assert sold.styled("success_error") == Answer("Success", 9)
    assert Answer("Unmatched", 9).styled("success_error") == Answer("Success", 9)
    assert Answer.restored(sold.stored()) == sold


def test_a_stylesheet_may_read_no_file_and_open_no_url(tmp_path: Path) -> None:
    from pingpost.responses import compiled

    secret = tmp_path / "secret.xml"
    secret.write_text("<secret>do not show</secret>")
    xsl = (
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        f'<xsl:template match="/"><out><xsl:copy-of select="document(\'{secret.as_uri()}\')"/>'
        "</out></xsl:template></xsl:stylesheet>"
    ).encode()
    with pytest.raises(etree.XSLTApplyError):
        compiled(xsl)(etree.fromstring(b"<response/>"))
    # The same stylesheet without the access control reads the file: the test can tell.
    unguarded = etree.XSLT(etree.fromstring(xsl))
    assert "do not show" in str(unguarded(etree.fromstring(b"<response/>")))


def test_what_answers_leave_out_is_exactly_what_xml_cannot_carry() -> None:
    from pingpost.responses import _not_xml

    allowed = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")  # XML 1.0, 2.2
    not_xml = _not_xml()
    for point in range(0x110000):
        char = chr(point)
        assert bool(not_xml.fullmatch(char)) != bool(allowed.fullmatch(char)), hex(point)

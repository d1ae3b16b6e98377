"""`pingpost form`: the web form as one static file (tests/e2e/test_form.py: in a browser)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import html

from pingpost_local.cli import main


def write(tmp_path: Path, *options: str) -> html.HtmlElement:
    out = tmp_path / "form.html"
    main(["form", "--url", "https://api.example.com/", "--key", "k-1", *options, "-o", str(out)])
    return html.fromstring(out.read_text(encoding="utf-8"))


def test_the_form_posts_to_the_exchange_as_the_vendor_and_returns_to_its_page(
    tmp_path: Path,
) -> None:
    page = write(tmp_path, "--thanks", "https://www.example.com/thanks", "--product", "Gutters")
    (form,) = page.forms
    assert form.action == "https://api.example.com/api.php"
    assert form.get("data-exchange") == "https://api.example.com"
    hidden = {i.name: i.value for i in form.inputs if i.get("type") == "hidden"}
    assert hidden["Key"] == "k-1" and hidden["Mode"] == "full" and hidden["TYPE"] == "7"
    assert hidden["Redirect_URL"] == "https://www.example.com/thanks"
    assert hidden["TCPA_Language"].startswith("By ticking this box I agree")
    assert form.inputs["Home_Improvement_Product"].value_options == ["", "Gutters"]
    # One file: nothing loaded from elsewhere
    assert not page.xpath("//*[@src or @href]")


def test_values_are_escaped_into_the_page(tmp_path: Path) -> None:
    out = tmp_path / "form.html"
    key = 'k"><script>alert(1)</script>'
    site = ["--url", "https://a.example", "--thanks", "https://b.example/"]
    main(["form", *site, "--key", key, "-o", str(out)])
    page = html.fromstring(out.read_text(encoding="utf-8"))
    assert page.forms[0].inputs["Key"].value == key
    assert len(page.xpath("//script")) == 1


@pytest.mark.parametrize(
    ("url", "thanks", "message"),
    [
        ("https://a.example", "/thanks", "thanks must be an absolute http(s) URL: '/thanks'"),
        ("https://a.example", "javascript:alert(1)", "thanks must be an absolute http(s) URL"),
        ("ftp://a.example", "https://b.example/", "exchange must be an absolute http(s) URL"),
    ],
)
def test_what_cannot_work_is_refused(url: str, thanks: str, message: str) -> None:
    with pytest.raises(SystemExit, match=re.escape(message)):
        main(["form", "--url", url, "--key", "k", "--thanks", thanks])


def test_an_unknown_product_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        site = ["--url", "https://a.example", "--thanks", "https://b.example"]
        main(["form", *site, "--key", "k", "--product", "Rockets"])
    assert "invalid choice: 'Rockets'" in capsys.readouterr().err


def test_every_field_of_the_form_is_one_of_the_table_and_a_full_lead_needs_no_other(
    tmp_path: Path,
) -> None:
    from pingpost.fields import BY_NAME, LOOKED_UP, SOURCE_ADDRESS, Need

    page = write(tmp_path, "--thanks", "https://www.example.com/thanks")
    names = {element.name for element in page.forms[0].inputs}
    assert names <= set(BY_NAME)
    required = {f.name for f in BY_NAME.values() if f.required("full") is Need.YES}
    # The State is looked up from the Zip; the browser's address is the consumer's
    assert required - names == set(LOOKED_UP) | {SOURCE_ADDRESS}


def test_a_form_of_another_lead_type_is_made_from_its_table(tmp_path: Path) -> None:
    page = write(tmp_path, "--thanks", "https://www.example.com/thanks", "--type", "20")
    (form,) = page.forms
    hidden = {i.name: i.value for i in form.inputs if i.get("type") == "hidden"}
    assert (hidden["TYPE"], hidden["Mode"], hidden["Key"]) == ("20", "full", "k-1")
    names = {i.name for i in form.inputs}
    # What a whole lead of the type requires, and what partners filter on; not another type's
    assert {"Driver_1_Zip", "Driver_1_Birthdate", "Vehicle_1_Year", "Driver_1_Email"} <= names
    assert "Driver_1_Age" in names and "Home_Improvement_Product" not in names
    assert "Driver_1_State" not in names  # looked up from the ZIP code
    assert form.inputs["Driver_1_Credit_Rating"].value_options == [
        "Excellent", "Good", "Average", "Poor", "Unknown"
    ]  # fmt: skip
    assert form.inputs["Driver_1_Zip"].get("required") is not None
    assert form.inputs["Driver_1_Age"].get("required") is None
    assert not page.xpath("//*[@src or @href]")

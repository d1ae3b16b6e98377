"""Every field of the table: one accepted and one rejected value, generated from the table."""

from __future__ import annotations

import pytest

from pingpost.errors import InvalidRequest
from pingpost.fields import FIELDS, MODES, PRODUCTS, Field, Kind, Need
from pingpost.validation import parse

# A value each kind refuses, built from the field's own row.
REJECTED = {
    Kind.TEXT: lambda f: "x" * (f.max_len + 1),
    Kind.KEY: lambda f: "k" * (f.max_len + 1),
    Kind.ACTION: lambda f: "pingLead",
    Kind.MODE: lambda f: "sell",
    Kind.MONEY: lambda f: "2,55",
    Kind.COUNT: lambda f: "0",
    Kind.INTEGER: lambda f: "12.5",
    Kind.CHOICE: lambda f: f.values[0] + " (other)",
    Kind.FLAG: lambda f: "yes",
    Kind.LEAD_TYPE: lambda f: "5",
    Kind.ID_LIST: lambda f: "142,abc",
    Kind.URL: lambda f: "javascript:alert(1)",
    Kind.IP: lambda f: "75.2.92.300",
    Kind.STATE: lambda f: "XX",
    Kind.ZIP: lambda f: "00000",
    Kind.EMAIL: lambda f: "test@nags",
    Kind.PHONE: lambda f: "1235556491",
    Kind.DATE: lambda f: "13/23/1980",
    Kind.CERTIFICATE: lambda f: "https://cert.example.com/2a1b3c4d",  # not the certifier's host
    Kind.CONSENT_TOKEN: lambda f: "<script>",
}


def ids(field: Field) -> str:
    return field.name


@pytest.mark.parametrize("field", FIELDS, ids=ids)
def test_the_spec_example_is_accepted(field: Field) -> None:
    # Given the example the specification gives for the field / When it is parsed
    values = parse({field.name: field.example})
    # Then it is kept
    assert field.name in values


@pytest.mark.parametrize("field", FIELDS, ids=ids)
def test_a_bad_value_is_refused_naming_the_field(field: Field) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse({field.name: REJECTED[field.kind](field)})
    assert refused.value.messages == [refused.value.messages[0]]
    assert refused.value.messages[0].startswith(f"Invalid value for {field.name}: ")


@pytest.mark.parametrize("field", [f for f in FIELDS if f.kind is Kind.CHOICE], ids=ids)
def test_every_allowed_value_is_accepted_in_any_case(field: Field) -> None:
    for value in field.values:
        assert parse({field.name: value})[field.name] == value
        assert parse({field.name: value.upper()})[field.name] == value


def test_the_table_has_every_field_of_the_spec_once() -> None:
    names = [f.name for f in FIELDS]
    assert len(names) == len(set(names))
    spec = [f.name for f in FIELDS if f.spec]
    assert len(spec) == 104
    assert spec[:3] == ["Key", "API_Action", "Mode"]
    assert spec[-1] == "Comments"
    # What publishers send the hosted platform beyond the spec's table comes after it.
    assert names[: len(spec)] == spec


def test_aliases_name_no_field_and_each_names_one() -> None:
    from pingpost.fields import ALIASES, BY_NAME

    assert not set(ALIASES) & set(BY_NAME)
    # The five spellings of the LeadiD token publishers' code sends.
    assert ALIASES == {
        "xxTrustedFormCertUrl": "Trusted_Form_URL",
        "leadid_token": "LeadiD_Token",
        "Universal_LeadiD": "LeadiD_Token",
        "UNIVERSAL_LEAD_ID": "LeadiD_Token",
        "Universal_Leadid": "LeadiD_Token",
    }


def test_products_are_reconstructed_from_the_run_together_list() -> None:
    assert len(PRODUCTS) == len(set(PRODUCTS)) == 100
    for product in (
        "Bathroom Remodel",
        "Roofing - Metal",
        "Replacement Windows - 10+",
        "Patio, Porches and Enclosures",
        "Home Security - New Install",
        "Electrical Switches, Outlets and Fixtures",
        "Pest Control - Bugs and/or Rodents",
        "Interior Painting: 9+ Rooms",
    ):
        assert product in PRODUCTS
    assert "-----" not in PRODUCTS


def test_required_fields_per_mode_follow_the_spec() -> None:
    def required(mode: str) -> set[str]:
        return {f.name for f in FIELDS if f.required(mode) is Need.YES}

    control = {"Key", "API_Action", "Mode", "TYPE"}
    assert required("ping") == control | {
        "SRC",
        "State",
        "Zip",
        "Home_Improvement_Product",
        "Score",
    }
    assert required("post") == control | {
        "Lead_ID",
        "IP_Address",
        "Landing_Page",
        "First_Name",
        "Last_Name",
        "Address",
        "City",
        "Email",
        "Home_Phone",
    }
    assert required("full") == (required("ping") | required("post")) - {"Lead_ID"}
    dynamic = {f.name for m in MODES for f in FIELDS if f.required(m) is Need.DYNAMIC_PRICING}
    assert dynamic == {"Return_Best_Price"}


def test_each_lead_types_documentation_is_generated_from_its_table() -> None:
    from pathlib import Path

    from pingpost.fields import TABLES, markdown

    folder = Path(__file__).resolve().parents[2] / "docs" / "leadtypes"
    expected = {f"{t.lead_type.slug}.md": t for t in TABLES.values()}
    assert sorted(p.name for p in folder.glob("*.md")) == sorted(expected)
    for name, lead_table in expected.items():
        document = (folder / name).read_text()
        run = f"pingpost fields --type {lead_table.type} > docs/leadtypes/{name}"
        assert document == markdown(lead_table), f"run: {run}"
        for field in lead_table.fields:
            assert f"| {field.name} |" in document
    assert "| Home_Improvement_Product |" in (folder / "home_improvement.md").read_text()

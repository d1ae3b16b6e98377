"""Validation of whole requests: required fields per mode and the rules between fields."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pingpost.errors import InvalidRequest
from pingpost.fields import FIELDS, Need
from pingpost.validation import extras, parse, validate


def example(mode: str, *, dynamic: bool = False) -> dict[str, str]:
    """The spec's example value of every field `mode` requires."""
    out = {}
    for field in FIELDS:
        need = field.required(mode)
        if need is Need.YES or (need is Need.DYNAMIC_PRICING and dynamic):
            out[field.name] = field.example
    out["Mode"] = mode
    return out


def refusal(raw: dict[str, str], mode: str, *, dynamic: bool = False) -> list[str]:
    with pytest.raises(InvalidRequest) as refused:
        validate(raw, mode, dynamic_pricing=dynamic)
    return refused.value.messages


@pytest.mark.parametrize("mode", ["ping", "post", "full"])
def test_each_required_field_left_out_is_named(mode: str) -> None:
    complete = example(mode)
    validate(complete, mode, dynamic_pricing=False)
    for name in complete:
        if name == "State":
            continue  # comes from the Zip
        raw = {k: v for k, v in complete.items() if k != name}
        assert refusal(raw, mode) == [f"Required value {name} is missing"]


def test_an_empty_value_counts_as_missing() -> None:
    raw = example("post") | {"First_Name": "   "}
    assert refusal(raw, "post") == ["Required value First_Name is missing"]


def test_a_field_without_a_name_hides_no_missing_field() -> None:
    # A state is not required when the ZIP it is looked up from is sent; a nameless field once
    # stood for every other field's ZIP, so a post of it alone passed and failed with a 500.
    assert "Required value Lead_ID is missing" in refusal({"": "x"}, "post")
    raw = {k: v for k, v in example("ping").items() if k not in ("State", "Zip")} | {"": "x"}
    assert "Required value State is missing" in refusal(raw, "ping")


def test_state_is_looked_up_from_the_zip_on_ping() -> None:
    raw = {k: v for k, v in example("ping").items() if k != "State"}
    assert validate(raw, "ping", dynamic_pricing=False)["State"] == "IL"


def test_state_must_agree_with_the_zip() -> None:
    raw = example("ping") | {"State": "CA"}
    assert refusal(raw, "ping") == ["Invalid value for State: Zip 60610 is in IL, not CA"]


def test_return_best_price_is_required_of_dynamic_pricing_vendors_only() -> None:
    raw = example("ping")
    validate(raw, "ping", dynamic_pricing=False)
    assert refusal(raw, "ping", dynamic=True) == ["Required value Return_Best_Price is missing"]
    validate(raw | {"Return_Best_Price": "1"}, "ping", dynamic_pricing=True)


def test_hash_options_go_together() -> None:
    expected = ["Return_Hash_Type and Return_Hash_Value_Type must be used together"]
    assert refusal(example("ping") | {"Return_Hash_Type": "md5"}, "ping") == expected
    assert refusal(example("ping") | {"Return_Hash_Value_Type": "email"}, "ping") == expected


def test_cost_of_zero_or_less_is_ignored_and_cost_is_ignored_on_post() -> None:
    assert "Cost" not in validate(example("ping") | {"Cost": "0"}, "ping", dynamic_pricing=False)
    assert "Cost" not in validate(example("ping") | {"Cost": "-3"}, "ping", dynamic_pricing=False)
    ping = validate(example("ping") | {"Cost": "2.55"}, "ping", dynamic_pricing=False)
    assert ping["Cost"] == Decimal("2.55")
    assert "Cost" not in validate(example("post") | {"Cost": "2.55"}, "post", dynamic_pricing=False)


def test_values_are_normalised() -> None:
    raw = example("full") | {
        "Home_Phone": "(312) 555-6491",
        "Cell_Phone": "+1 312.555.9682",
        "State": "il",
        "Home_Improvement_Product": "roofing  -  METAL",
        "Skip_Partner_ID": " 142, 1543,,142 ",
        "Move_Date": "1/2/2027",
        "Score": "+12",
    }
    values = validate(raw, "full", dynamic_pricing=False)
    assert values["Home_Phone"] == "3125556491"
    assert values["Cell_Phone"] == "3125559682"
    assert values["State"] == "IL"
    assert values["Home_Improvement_Product"] == "Roofing - Metal"
    assert values["Skip_Partner_ID"] == (142, 1543)
    assert values["Move_Date"] == "01/02/2027"
    assert values["Score"] == 12


def test_every_problem_is_reported_in_table_order() -> None:
    raw = example("post") | {"Email": "nope", "Home_Phone": "12"}
    del raw["First_Name"]
    assert refusal(raw, "post") == [
        "Required value First_Name is missing",
        "Invalid value for Email: must be a valid email address",
        "Invalid value for Home_Phone: must be a valid 10-digit US phone number",
    ]


def test_unknown_fields_are_kept_but_bounded() -> None:
    kept = extras({"Key": "k", "Utm_Campaign": "spring", "bad name": "x", "Big": "y" * 5000})
    assert kept == {"Utm_Campaign": "spring", "Big": "y" * 1000}


def test_whole_numbers_may_carry_a_zero_fraction_as_json_floats_do() -> None:
    assert parse({"Score": "12.0", "Allowed_Times_Sold": "2.00"}) == {
        "Score": 12,
        "Allowed_Times_Sold": 2,
    }
    with pytest.raises(InvalidRequest, match="Invalid value for Score: must be a whole number"):
        parse({"Score": "12.5"})


@pytest.mark.parametrize("cost", ["1e-999999999", "-1e-999999999", "0.0000001"])
def test_a_cost_too_small_to_be_money_is_refused(cost: str) -> None:
    with pytest.raises(InvalidRequest, match="Invalid value for Cost: must be a number"):
        parse({"Cost": cost})


@pytest.mark.parametrize(
    "url",
    [
        "cert.trustedform.com/abc123",
        "//cert.trustedform.com/abc123",
        "http://cert.trustedform.com/abc",
    ],
)
def test_a_certificate_url_must_say_https(url: str) -> None:
    with pytest.raises(InvalidRequest, match="Invalid value for Trusted_Form_URL"):
        parse({"Trusted_Form_URL": url})
    assert parse({"Trusted_Form_URL": "HTTPS://cert.trustedform.com/abc123"})


@pytest.mark.parametrize("character", ["\x01", "\x7f", "\ufdd0", "\ufffe", "\uffff", "\U0010ffff"])
@pytest.mark.parametrize(
    ("name", "value"),
    [("First_Name", "Jo{}hn"), ("Comments", "call {}"), ("Trusted_Form_URL", "x"), ("Mode", "p{}")],
)
def test_characters_no_xml_can_carry_are_refused_in_every_field(
    character: str, name: str, value: str
) -> None:
    # A name with U+FFFF was accepted, then its partner's XML delivery could not be written.
    raw = example("full") | {name: value.format(character) if "{}" in value else character}
    assert refusal(raw, "full") == [
        f"Invalid value for {name}: contains control characters or Unicode non-characters"
    ]


def test_extra_fields_lose_the_characters_no_xml_can_carry() -> None:
    assert extras({"Note": "a\uffffb\x02c\U0001fffed"}) == {"Note": "abcd"}


@pytest.mark.parametrize(
    ("field", "sent", "told"),
    [
        ("TYPE", "100", "must be a lead type of this exchange: 7 (Home Improvement), "),
        ("Mode", "pingpong", "must be one of: ping, post, full"),
        ("Best_Time_To_Contact", "Early Morning Hours", "must be one of: Morning, Afternoon"),
        ("Test_Lead", "11", "must be 1 (or 0 for not set)"),
        ("API_Action", "pingPostLeads", "must be pingPostLead"),
    ],
)
def test_a_value_of_a_closed_set_is_told_the_set_however_long(
    field: str, sent: str, told: str
) -> None:
    # (It was told the set's longest length: "must be at most 4 characters" for a Mode.)
    with pytest.raises(InvalidRequest) as refused:
        parse({field: sent})
    assert refused.value.messages[0].startswith(f"Invalid value for {field}: {told}")

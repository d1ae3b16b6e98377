"""Lead types in the exchange's rules: a stored partner or vendor of a type taken away, the
consumer each type knows its lead by, partners' number filters, names a file may give, and
JSON's true read by the request's own type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pingpost.decoding import json_request
from pingpost.fields import TABLES
from pingpost.leadtypes import LeadTypeError, load
from pingpost.models import STORED, Partner, Vendor

DELIVERY = {"url": "https://buyer.example/leads"}


def stored_partner(**fields: Any) -> Partner:
    return Partner.model_validate(
        {"id": 7, "price": 5, "delivery": DELIVERY} | fields, context=STORED
    )


def test_a_stored_partner_of_a_type_taken_away_buys_nothing_and_stops_nothing() -> None:
    # Its item is read (every request reads the partners), without the type it named.
    assert stored_partner(lead_types=["40", "20"]).lead_types == ["20"]
    assert stored_partner(lead_types=["40"]).lead_types == []
    # A filter on a field its types no longer have: it buys nothing rather than more.
    gone = stored_partner(lead_types=["20"], filters={"fields": {"Pet_Age": {"max": 3}}})
    assert (gone.lead_types, gone.filters.fields) == ([], {})
    assert Vendor.model_validate(
        {"id": "v", "key_hash": "0" * 64, "lead_types": ["40", "21"]}, context=STORED
    ).lead_types == ["21"]
    # A partner given anew (a seed file, `partners add`) is refused, saying why.
    with pytest.raises(ValidationError, match="lead_types must be some of the exchange's"):
        Partner.model_validate({"id": 7, "price": 5, "lead_types": ["40"]})


def test_each_type_knows_its_consumer_by_its_own_email_and_phone() -> None:
    auto = {"Driver_1_Email": "a@example.com", "Driver_1_Daytime_Phone": "3125550100"}
    assert TABLES["20"].consumer(auto) == {"email": "a@example.com", "phone": "3125550100"}
    home = {"Email": "h@example.com", "Home_Phone": "3125550101", "Cell_Phone": "3125550102"}
    assert TABLES["7"].consumer(home) == {"email": "h@example.com", "phone": "3125550101"}
    assert TABLES["21"].consumer({"Email": "s@example.com"}) == {"email": "s@example.com"}


def test_a_number_is_filtered_by_a_range_not_by_a_list_of_texts() -> None:
    with pytest.raises(ValidationError, match="Driver_1_Age is a number: give a range"):
        Partner.model_validate(
            {
                "id": 7,
                "price": 5,
                "lead_types": ["20"],
                "filters": {"fields": {"Driver_1_Age": ["44"]}},
            }
        )


def field(name: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "ping": "no", "post": False, "kind": "integer"} | more


def group(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"repeat": 2, "fields": list(fields)}


@pytest.mark.parametrize(
    ("entry", "fault"),
    [
        ({"repeat": 2, "fields": [field("#_Driver_Age")]}, "'1_Driver_Age' is not a name"),
        (field("Pet_Age", aliases=["Pet Age!"]), "'Pet Age!' is not a name"),
        (
            {"repeat": 2, "fields": [field("Age_#", aliases=["Years_#_#"])]},
            "'Years_1_#' is not a name",
        ),
    ],
)
def test_a_name_no_xml_tag_or_form_field_can_carry_is_refused(
    tmp_path: Path, entry: dict[str, Any], fault: str
) -> None:
    path = tmp_path / "pets.json"
    path.write_text(json.dumps({"type": "40", "name": "Pets", "fields": [entry]}))
    with pytest.raises(LeadTypeError, match=fault):
        load(path)


def test_json_true_is_yes_only_for_the_requests_own_yes_no_fields() -> None:
    solar = json_request(b'{"TYPE": 21, "Homeowner": true, "Test_Lead": true}')
    assert (solar.fields["Homeowner"], solar.fields["Test_Lead"]) == ("Yes", "1")
    home = json_request(b'{"TYPE": "7", "Homeowner": true, "Need_Financing": true}')
    assert (home.fields["Homeowner"], home.fields["Need_Financing"]) == ("1", "Yes")


@pytest.mark.parametrize(
    ("entry", "fault"),
    [
        ({"repeat": 0, "fields": [field("Age_#")]}, "a bad repeat: repeat must be a whole number"),
        ({"repeat": 21, "fields": [field("Age_#")]}, "repeat must be a whole number from 1 to 20"),
        ({"repeat": 2, "required": 3, "fields": [field("Age_#")]}, "required must be a whole"),
        ({"repeat": 2, "fields": [field("Age")]}, "so its name needs 1 '#'"),
        (field("Age_#"), "it is in no numbered group, so its name needs 0 '#'"),
        ({"repeat": 2, "fields": []}, "fields must be a list of the group's fields"),
        ({"repeat": 2, "fields": [field("A_#")], "max": 3}, "unknown key 'max'"),
        (group(group(group(field("A_#_#_#")))), "groups nest at most 2 deep"),
        ({"repeat": 2, "fields": [field("A_#"), field("A_#")]}, "field A_1: a duplicate name"),
    ],
)  # fmt: skip
def test_a_bad_numbered_group_is_refused_naming_the_fault(
    tmp_path: Path, entry: dict[str, Any], fault: str
) -> None:
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"type": "41", "name": "Groups", "fields": [entry]}))
    with pytest.raises(LeadTypeError, match=f"^groups.json: .*{fault}"):
        load(path)


def test_a_partner_of_the_default_type_is_stored_as_before_lead_types() -> None:
    # Every container holds every partner: an attribute each is memory and read units.
    from pingpost.store.partners import compact

    home = Partner.model_validate({"id": 7, "price": 5, "delivery": DELIVERY})
    item = compact(home.model_dump(mode="python"))
    assert "lead_types" not in item and "fields" not in item["filters"]
    assert "bid" not in item and "post" not in item
    assert Partner.model_validate(item, context=STORED) == home
    auto = Partner.model_validate(
        {
            "id": 8,
            "price": 5,
            "lead_types": ["20"],
            "filters": {"fields": {"Driver_1_Age": {"min": 30}}},
        }
    )
    item = compact(auto.model_dump(mode="python"))
    assert item["lead_types"] == ["20"] and item["filters"]["fields"] == {
        "Driver_1_Age": {"min": 30, "max": None}
    }
    assert Partner.model_validate(item, context=STORED) == auto

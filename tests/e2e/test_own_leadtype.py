"""A lead type an operator writes in a folder of its own (LEAD_TYPES_DIR) is validated,
matched, explained, delivered and documented by `pingpost serve` with no code of its own.

The type has a field of every kind a lead's field may have, a standard field overridden, and
partners filtering on `match` fields of each shape (values of a choice, of a text, a range of
an integer and of money)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ROOT, Server, serve_process
from tests.e2e.test_http import form, lead

KEY = "pets-key-0123456789abcdef"
PET_TYPE = {
    "type": "40",
    "name": "Pet Insurance",
    "note": "written by a test: a field of every kind",
    "fields": [
        {"name": "Zip", "ping": "yes", "post": False},
        {"name": "State", "ping": "yes", "post": False},
        {"name": "Email", "ping": "no", "post": True, "max_len": 60},  # overridden
        {"name": "Home_Phone", "ping": "no", "post": True},
        {"name": "IP_Address", "ping": "no", "post": True},
        {"name": "Trusted_Form_URL", "ping": "no", "post": False},
        {"name": "LeadiD_Token", "ping": "no", "post": False},
        {"name": "Pet_Name", "ping": "no", "post": True, "kind": "text", "max_len": 40},
        {
            "name": "Species",
            "ping": "yes",
            "post": False,
            "kind": "choice",
            "values": ["Dog", "Cat", "Bird"],
            "match": True,
        },
        {
            "name": "Breed",
            "ping": "no",
            "post": False,
            "kind": "text",
            "match": True,
            "example": "Beagle",
        },
        {
            "name": "Pet_Age",
            "ping": "yes",
            "post": False,
            "kind": "integer",
            "min": 0,
            "max": 30,
            "example": "4",
            "match": True,
        },
        {"name": "Annual_Premium", "ping": "no", "post": False, "kind": "money", "match": True},
        {"name": "Spayed", "ping": "no", "post": False, "kind": "flag"},
        {"name": "Vet_Website", "ping": "no", "post": False, "kind": "url"},
        {
            "name": "Pet_Birthdate",
            "ping": "no",
            "post": False,
            "kind": "date",
            "formats": ["YYYY-MM-DD", "MM/DD/YYYY"],
        },
    ],
}
PARTNERS = [
    {"id": 4001, "company": "Good Dogs Mutual", "price": 40, "lead_types": ["40"],
     "filters": {"fields": {"Species": ["dog"], "Breed": ["Beagle", "labrador"],
                            "Pet_Age": {"max": 12}, "Annual_Premium": {"min": 100}}},
     "delivery": {"url": "http://127.0.0.1:9000/leads", "format": "json"}},
    {"id": 4002, "company": "Any Pet Cover", "price": 11, "lead_types": ["40"],
     "delivery": {"url": "http://127.0.0.1:9000/leads", "format": "form"}},
]  # fmt: skip


@pytest.fixture(scope="module")
def pets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    folder = tmp_path_factory.mktemp("leadtypes")
    (folder / "pet_insurance.json").write_text(json.dumps(PET_TYPE))
    seed = folder.parent / "pets-seed.json"
    vendor = {"id": "pets", "key": KEY, "cost": 5, "lead_types": ["40"]}
    seed.write_text(json.dumps({"vendors": [vendor], "partners": PARTNERS}))
    variables = {"LEAD_TYPES_DIR": str(folder)}
    with serve_process("--partner-port", "0", "--seed", str(seed), env=variables) as running:
        yield running, folder


def ping(**fields: str) -> dict[str, str]:
    sent = {"Key": KEY, "API_Action": "pingPostLead", "TYPE": "40", "Zip": "60610"}
    return sent | {"Species": "Dog", "Pet_Age": "4", "Breed": "beagle"} | fields


def post_of(lead_id: str, **fields: str) -> dict[str, str]:
    contact = {"Email": "owner@example.com", "Home_Phone": "3125550150", "Pet_Name": "Rex"}
    sent = {"Key": KEY, "API_Action": "pingPostLead", "TYPE": "40", "Lead_ID": lead_id}
    return sent | contact | {"IP_Address": "75.2.92.149"} | fields


def decided(stored: dict[str, Any]) -> dict[int, str]:
    from pingpost.store.leads import read_decisions

    return {partner: str(verdict) for partner, verdict in read_decisions(stored["decisions"])}


def test_a_lead_of_the_operators_type_is_validated_matched_sold_and_delivered(
    pets: tuple[Server, Path],
) -> None:
    server, _ = pets
    pinged = form(server, "/ping", ping(Annual_Premium="250.00", Pet_Birthdate="4/9/2021"))
    assert pinged["status"] == "Matched", pinged.body
    stored = lead(server, pinged["lead_id"])
    assert decided(stored) == {4001: "matched", 4002: "matched"}
    # Values as the type keeps them: a choice as spelt, a date in its first format.
    assert (stored["data"]["Species"], stored["data"]["Pet_Birthdate"]) == ("Dog", "2021-04-09")
    posted = form(server, "/post", post_of(pinged["lead_id"] or ""))
    assert posted["status"] == "Matched", posted.body
    deadline = time.monotonic() + 20
    while (stored := lead(server, pinged["lead_id"]))["deliveries"].get("4001", {}).get(
        "state"
    ) != "delivered" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(stored["sold_to"]) == ["4001"]
    assert stored["deliveries"]["4001"]["state"] == "delivered"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"Species": "cat"}, "Species Cat not taken"),
        ({"Breed": "Poodle"}, "Breed Poodle not taken"),
        ({"Pet_Age": "13"}, "Pet_Age 13 above 12"),
        ({"Annual_Premium": "99.99"}, "Annual_Premium 99.99 below 100"),
        ({}, "Annual_Premium not sent"),
    ],
)
def test_each_field_filter_says_why_it_refused_a_lead(
    pets: tuple[Server, Path], changes: dict[str, str], reason: str
) -> None:
    server, _ = pets
    fields = ping(Annual_Premium="250") | changes
    if not changes:
        del fields["Annual_Premium"]
    answer = form(server, "/ping", fields)
    assert answer["status"] == "Matched", answer.body  # Any Pet Cover takes it
    assert decided(lead(server, answer["lead_id"]))[4001] == reason
    shown = server.pingpost("lead", "show", str(answer["lead_id"]))
    assert reason in shown.stdout, shown.stdout + shown.stderr


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"Pet_Age": "31"}, "Invalid value for Pet_Age: must be at least 0 and at most 30"),
        (
            {"Pet_Birthdate": "23/12/2019"},
            "Invalid value for Pet_Birthdate: must be a date as YYYY-MM-DD or MM/DD/YYYY,"
            " e.g. 1980-12-23",
        ),
        ({"Species": ""}, "Required value Species is missing"),
        ({"Spayed": "2"}, "Invalid value for Spayed: must be 1 (or 0 for not set)"),
        (
            {"Annual_Premium": "lots"},
            "Invalid value for Annual_Premium: must be a number such as 2.55",
        ),
        ({"Zip": "60610", "State": "CA"}, "Invalid value for State: Zip 60610 is in IL, not CA"),
    ],
)
def test_its_fields_are_checked_as_its_file_says(
    pets: tuple[Server, Path], changes: dict[str, str], error: str
) -> None:
    server, _ = pets
    answer = form(server, "/ping", {k: v for k, v in (ping() | changes).items() if v})
    assert (answer.status, answer["error"]) == (400, error)


def test_an_overridden_standard_field_keeps_the_types_limit(pets: tuple[Server, Path]) -> None:
    server, _ = pets
    pinged = form(server, "/ping", ping())
    long_email = "o" * 50 + "@example.com"  # 62 characters: the standard 100 would take it
    answer = form(server, "/post", post_of(pinged["lead_id"] or "", Email=long_email))
    assert (answer.status, answer["error"]) == (
        400,
        "Invalid value for Email: must be at most 60 characters",
    )


def test_the_type_is_documented_where_every_type_is(pets: tuple[Server, Path]) -> None:
    server, folder = pets
    document = requests.get(server.url + "/openapi.yaml", timeout=30).text
    assert "PingPetInsuranceRequest:" in document and "Pet_Birthdate" in document
    environment = {"LEAD_TYPES_DIR": str(folder), "PATH": str(Path(sys.executable).parent)}
    command = [sys.executable, "-m", "pingpost_local.cli"]
    table = subprocess.run(
        [*command, "fields", "--type", "40"], env=environment, cwd=ROOT, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    assert table.stdout.startswith("# pingPostLead fields (Pet Insurance, TYPE=40)")
    assert "| Pet_Age | yes |  | Data | a whole number, at least 0, at most 30 |" in table.stdout
    listed = subprocess.run(
        [*command, "leadtypes", "list"], env=environment, cwd=ROOT, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    assert "40  Pet Insurance  (15 fields)" in listed.stdout

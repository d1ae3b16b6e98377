"""Lead types as data: the shipped files load, Home Improvement's is the specification's table,
and a broken file is refused naming the file, the field and the fault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pingpost.fields import FIELDS, HOME_IMPROVEMENT, PRODUCTS
from pingpost.leadtypes import Kind, LeadTypeError, Need, load, shipped, standard


def written(tmp_path: Path, *fields: dict[str, Any], **top: Any) -> Path:
    path = tmp_path / "solar.json"
    document = {"type": "19", "name": "Solar", "fields": list(fields)} | top
    path.write_text(json.dumps(document))
    return path


def test_the_shipped_types_load_and_home_improvement_is_type_7() -> None:
    (home,) = [t for t in shipped() if t.type == "7"]
    assert home.name == "Home Improvement" and home.fields == HOME_IMPROVEMENT.fields
    assert "Bathroom Remodel" in PRODUCTS and len(PRODUCTS) == 100
    # Every lead field of the table is the file's; the protocol's stay in code.
    assert [f.name for f in FIELDS if not f.control] == [f.name for f in home.fields]


def test_a_standard_field_needs_only_its_name_and_what_each_mode_asks(tmp_path: Path) -> None:
    path = written(
        tmp_path,
        {"name": "Zip", "ping": "yes", "post": True},
        {"name": "Email", "ping": "no", "post": True, "max_len": 80},  # overridden
        {
            "name": "Credit_Score",
            "ping": "yes",
            "post": True,
            "kind": "integer",
            "min": 300,
            "max": 850,
            "match": True,
        },
        {
            "name": "Roof_Age",
            "ping": "dynamic_pricing",
            "post": False,
            "kind": "choice",
            "values": ["New", "Old"],
        },
    )
    zip_, email, score, age = load(path).fields
    assert (zip_.kind, zip_.max_len, zip_.ping, zip_.post) == (Kind.ZIP, 5, Need.YES, True)
    assert (email.kind, email.max_len, email.pii) == (Kind.EMAIL, 80, True)
    # The standard example of an integer (12), brought within the field's bounds.
    assert (score.least, score.most, score.match, score.example) == (300, 850, True, "300")
    assert (age.ping, age.max_len, age.example) == (Need.DYNAMIC_PRICING, 3, "New")
    assert standard()["Email"]["pii"] is True


T = {"ping": "no", "post": True, "kind": "text"}  # a field of its own (not a standard one)


@pytest.mark.parametrize(
    ("fields", "top", "fault"),
    [
        ([T | {"name": "A", "kind": "weird"}], {}, "field A: unknown kind 'weird'"),
        ([T | {"name": "A", "kind": "key"}], {}, "field A: unknown kind 'key'"),
        ([T | {"name": "A"}] * 2, {}, "field A: a duplicate name"),
        ([T | {"name": "A", "kind": "choice"}], {}, "field A: a choice needs its values"),
        ([T | {"name": "A", "values": ["x"]}], {}, "field A: only a choice has values"),
        ([T | {"name": "A", "ping": "maybe"}], {}, "field A: ping must be yes, no or"),
        ([T | {"name": "A", "ping": ["no"]}], {}, "field A: ping must be yes, no or"),
        ([{"name": "A", "ping": "no", "kind": "text"}], {}, "field A: post must be true or"),
        ([T | {"name": "A", "post": "yes"}], {}, "field A: post must be true or false"),
        ([{"name": "A", "ping": "no", "post": True}], {}, "field A: kind is needed"),
        ([{"name": "Home_phone", "ping": "no", "post": True}], {}, "field Home_phone: kind is"),
        ([T | {"name": "A", "colour": 1}], {}, "field A: unknown key 'colour'"),
        ([T | {"name": "A", "min": 1}], {}, "field A: min must be a whole number, for an"),
        ([T | {"name": "A", "kind": "integer", "min": 9, "max": 1}], {}, "field A: min is over"),
        ([T | {"name": "A", "kind": "integer", "max": 10**12}], {}, "field A: max must have at"),
        ([T | {"name": "A", "max_len": 0}], {}, "field A: max_len must be"),
        (
            [T | {"name": "A", "kind": "choice", "values": ["abcdef"], "max_len": 2}],
            {},
            "field A: max_len must be a whole number from 6",
        ),
        (
            [T | {"name": "A", "kind": "choice", "values": ["x", "X"]}],
            {},
            "field A: values holds a value twice",
        ),
        (
            [T | {"name": "A", "kind": "choice", "values": ["a b", "a  b"]}],
            {},
            "field A: values holds a value twice",
        ),
        (
            [T | {"name": "A", "kind": "choice", "values": [" "]}],
            {},
            "field A: values must be a list of texts",
        ),
        (
            [T | {"name": "A", "kind": "choice", "values": ["x"], "example": "zzz"}],
            {},
            "field A: example 'zzz' is not a value",
        ),
        ([T | {"name": "A", "consent": "gvien"}], {}, "field A: consent must be one of"),
        (
            [T | {"name": "A", "kind": "choice", "values": ["Agreed", "No"], "consent": "given"}],
            {},
            "field A: a consent given must be a choice of Yes and No",
        ),
        (
            [T | {"name": "A", "aliases": ["B"]}, T | {"name": "B"}],
            {},
            "field A: alias B is a field",
        ),
        (
            [T | {"name": "A", "aliases": ["C"]}, T | {"name": "B", "aliases": ["C"]}],
            {},
            "field B: alias C is taken",
        ),
        ([T | {"name": "Key"}], {}, "field Key: a protocol field's name"),
        ([T | {"name": "A", "aliases": ["Mode"]}], {}, "field A: alias Mode is taken"),
        (
            [T | {"name": "A", "aliases": ["Universal_LeadiD"]}],
            {},
            "field A: alias Universal_LeadiD is taken",
        ),
        (
            [{"name": "not a name", "ping": "no", "post": True}],
            {},
            "field 2: must be an object with a name",
        ),
        (["A"], {}, "field 2: must be an object with a name"),
        ([], {"type": "seven"}, "type must be a number from 1 to 99"),
        ([], {"type": "07"}, "type must be a number from 1 to 99"),
        ([], {"type": "0"}, "type must be a number from 1 to 99"),
        ([], {"name": ""}, "name must be text"),
        ([], {"vertical": "x"}, "unknown key 'vertical'"),
    ],
)
def test_a_broken_file_is_refused_naming_the_file_the_field_and_the_fault(
    tmp_path: Path, fields: list[dict[str, Any]], top: dict[str, Any], fault: str
) -> None:
    with pytest.raises(LeadTypeError, match=f"^solar.json: {fault}"):
        from pingpost.fields import RESERVED

        fields = [{"name": "LeadiD_Token", "ping": "no", "post": False}, *fields]
        load(written(tmp_path, *fields, **top), RESERVED)


@pytest.mark.parametrize("text", ['{"type": "7",', "[" * 100_000, '{"type": ' + "9" * 5000 + "}"])
def test_a_file_that_is_not_json_is_refused_with_its_name(tmp_path: Path, text: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(LeadTypeError, match=r"^broken\.json: not JSON"):
        load(path)


def test_a_standard_field_given_another_kind_keeps_only_its_pii_and_note(tmp_path: Path) -> None:
    # Found by review: Landing_Page as a zip kept its 255 characters and its example "landing".
    path = written(tmp_path, {"name": "Landing_Page", "ping": "no", "post": True, "kind": "zip"})
    (page,) = load(path).fields
    assert (page.kind, page.max_len, page.example, page.consent) == (Kind.ZIP, 5, "60610", "")


def test_the_command_checks_a_file_before_it_is_deployed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pingpost_local.cli import main

    good = written(tmp_path, {"name": "Zip", "ping": "yes", "post": True})
    main(["leadtypes", "check", str(good)])
    assert capsys.readouterr().out == f"{good}: TYPE 19, Solar, 1 fields\n"
    bad = written(tmp_path, {"name": "Zip", "ping": "sometimes", "post": True})
    with pytest.raises(SystemExit, match=r"solar\.json: field Zip: ping must be yes, no or"):
        main(["leadtypes", "check", str(bad)])
    main(["leadtypes", "list"])
    assert "7  Home Improvement  (94 fields)" in capsys.readouterr().out


def test_an_integer_outside_its_types_bounds_is_refused_naming_them() -> None:
    from pydantic_core import PydanticCustomError

    from pingpost.validation import _validator

    (score,) = [f for f in HOME_IMPROVEMENT.fields if f.name == "Score"]
    check = _validator(score._replace(least=0, most=100))
    assert check("100") == 100
    for value, said in (("101", "must be at least 0 and at most 100"), ("-1", "at least 0")):
        with pytest.raises(PydanticCustomError, match=said):
            check(value)


def test_the_operators_folder_is_read_for_each_files_type_and_checked_whole_when_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pingpost.fields import TABLES, TYPES
    from pingpost.leadtypes import files

    monkeypatch.setenv("LEAD_TYPES_DIR", str(tmp_path))
    broken = written(tmp_path, {"name": "Zip", "ping": "maybe", "post": True})
    assert files()["19"] == broken  # its TYPE is read; its fields when the type is needed
    with pytest.raises(LeadTypeError, match=r"solar\.json: field Zip: ping must be yes"):
        shipped()
    (tmp_path / "other.json").write_text(json.dumps({"type": "19", "name": "Other"}))
    with pytest.raises(LeadTypeError, match=r"solar\.json: type 19 is another file's too"):
        files()
    (tmp_path / "other.json").write_text(json.dumps({"type": "x", "name": "Other", "fields": []}))
    with pytest.raises(LeadTypeError, match=r"other\.json: type must be a number from 1 to 99"):
        files()
    # The exchange's own types: each made once, when first asked for.
    assert list(TYPES) == list(TABLES) == ["7", "20", "21"] and "19" not in TYPES
    assert TABLES["20"] is TABLES["20"] and TABLES["20"].lead_type is TYPES["20"]
    with pytest.raises(KeyError):
        TABLES["19"]


LAYER = Path(__file__).resolve().parents[2] / "layers" / "pingpost"


def test_a_broken_type_of_the_operator_stops_a_function_and_one_of_the_layer_its_build(
    tmp_path: Path,
) -> None:
    # The layer's own files are read when their type is first needed: its build checks them.
    written(tmp_path, {"name": "Zip", "ping": "maybe", "post": True})
    environment = {"PATH": os.environ["PATH"], "LEAD_TYPES_DIR": str(tmp_path)}
    build = subprocess.run(
        ["make", "-s", "-C", str(LAYER), "check-types", f"PYTHON={sys.executable}"],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
    )
    assert build.returncode != 0
    assert "LeadTypeError: solar.json: field Zip: ping must be yes" in build.stderr
    # A function reads an operator's folder (never built) whole when it starts.
    started = subprocess.run(
        [sys.executable, "-c", "import pingpost.fields"],
        capture_output=True,
        text=True,
        check=False,
        env=environment | {"PYTHONPATH": str(LAYER)},
    )
    assert started.returncode != 0
    assert "LeadTypeError: solar.json: field Zip: ping must be yes" in started.stderr
    (tmp_path / "solar.json").unlink()
    assert (
        subprocess.run(
            ["make", "-s", "-C", str(LAYER), "check-types", f"PYTHON={sys.executable}"],
            check=False,
            env=environment,
        ).returncode
        == 0
    )

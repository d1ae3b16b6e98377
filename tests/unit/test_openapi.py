"""openapi.yaml: generated from the template and the field table, valid OpenAPI 3.1, and true of
the requests the exchange takes."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml
from openapi_spec_validator import validate

from pingpost.fields import LEAD_ID, MODES, TABLES, Kind, Need
from pingpost_local.openapi import MODE, _typed
from tests.conftest import ROOT, TEMPLATE
from tests.leads import complete

DOCUMENT = ROOT / "openapi.yaml"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text())
    return loaded


def test_openapi_yaml_is_what_the_template_and_the_field_table_make() -> None:
    from pingpost_local.openapi import openapi_yaml
    from pingpost_local.template import load_template

    assert DOCUMENT.read_text() == openapi_yaml(load_template(TEMPLATE)), (
        "run: pingpost openapi > openapi.yaml"
    )


def test_it_is_a_valid_openapi_3_1_document(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"] == "3.1.0"


def test_every_route_of_the_template_is_described(document: dict[str, Any]) -> None:
    from pingpost_local.template import http_routes, load_template

    routes = {(r.method.lower(), r.path) for r in http_routes(load_template(TEMPLATE))}
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert described == routes


TYPED = [(mode, code) for mode in MODES for code in TABLES]


@pytest.mark.parametrize(("mode", "code"), TYPED)
def test_each_modes_request_names_every_field_and_requires_what_the_table_does(
    document: dict[str, Any], mode: str, code: str
) -> None:
    schemas = document["components"]["schemas"]
    lead_table = TABLES[code]
    name = _typed(mode, lead_table)
    assert {"$ref": f"#/components/schemas/{name}"} in schemas[f"{mode.capitalize()}Request"][
        "oneOf"
    ]
    schema = schemas[name]
    expected = [f for f in lead_table.fields if not (mode == "full" and f.name == LEAD_ID)]
    assert list(schema["properties"]) == [f.name for f in expected]
    needed = {f.name for f in expected if f.required(mode) is Need.YES and f.kind is not Kind.MODE}
    looked_up = lead_table.looked_up
    assert set(schema["required"]) == needed - set(looked_up)
    # The state may be left out when the ZIP code is sent (it is looked up from it).
    either = [{"anyOf": [{"required": [k]}, {"required": [v]}]} for k, v in looked_up.items()]
    assert schema.get("allOf", []) == [e for e, k in zip(either, looked_up) if k in needed]
    assert schema["properties"]["TYPE"]["enum"] == [code]
    for field in expected:
        described = schema["properties"][field.name]
        if field.values and field.kind is not Kind.MODE:
            assert described["enum"] == list(field.values), field.name
        elif "enum" not in described:
            assert described["maxLength"] == field.max_len, field.name


@pytest.mark.parametrize(("mode", "code"), TYPED)
def test_the_requests_the_exchange_takes_fit_the_description_and_incomplete_ones_do_not(
    document: dict[str, Any], mode: str, code: str
) -> None:
    def schema(name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}", "components": document["components"]}

    fields = complete(mode, code, **({LEAD_ID: "1234"} if mode == "post" else {}))
    mode_schema = schema(f"{mode.capitalize()}Request")
    jsonschema.validate(fields, mode_schema)  # the tests' requests, which the exchange answers
    own_name = _typed(mode, TABLES[code])
    own = document["components"]["schemas"][own_name]
    required = next(iter(own["required"]))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in fields.items() if k != required}, mode_schema)
    with pytest.raises(jsonschema.ValidationError, match=required):
        jsonschema.validate(
            {k: v for k, v in fields.items() if k != required},
            schema(own_name := _typed(mode, TABLES[code])),
        )
    with pytest.raises(jsonschema.ValidationError, match="is not one of"):
        jsonschema.validate(fields | {MODE: "other"}, schema(own_name))

"""openapi.yaml: every route of the template, field of the field table and answer, generated.

`pingpost openapi > openapi.yaml` writes it; tests/unit/test_openapi.py fails when the file
differs from what this makes, and checks it against the OpenAPI 3.1 schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any, Final

import yaml  # type: ignore[import-untyped]

from pingpost import errors
from pingpost.answers import ERROR, MATCHED, SUCCESS, UNMATCHED
from pingpost.fields import FIELDS, LEAD_ID, MODES, TABLES, Field, Kind, Need, Table, describe
from pingpost_local.template import Route, http_routes

MODE: Final = next(f.name for f in FIELDS if f.kind is Kind.MODE)
# Which mode a route's function takes: the others read it from the Mode field.
MODE_OF: Final = {"PingFunction": "ping", "PostFunction": "post", "FullFunction": "full"}
STYLESHEET: Final = "/response.xsl"
XML: Final = "application/xml"
FORM: Final = "application/x-www-form-urlencoded"
JSON: Final = "application/json"


def _errors() -> dict[str, str]:
    """What each error status means: the docstrings of the errors the edge answers with it."""
    found: dict[str, list[str]] = {}
    for error in vars(errors).values():
        if (
            isinstance(error, type)
            and issubclass(error, errors.PingPostError)
            and error is not errors.PingPostError
        ):
            text = (error.__doc__ or "").strip().rstrip(".")
            found.setdefault(str(error.status), []).append(text)
    return {status: "; ".join(texts) for status, texts in sorted(found.items())}


def _schema(field: Field, mode: str) -> dict[str, Any]:
    """A value of `field` as OpenAPI describes it (the exchange reads every value as text)."""
    schema: dict[str, Any] = {"type": "string", "description": describe(field)}
    if field.kind is Kind.MODE:
        schema["enum"] = [mode]  # a route of one mode takes no other
    elif field.kind is Kind.LEAD_TYPE:
        schema["enum"] = [field.example]  # each type's request is a schema of its own
    elif field.values:
        schema["enum"] = list(field.values)
    elif field.kind is Kind.FLAG:
        schema["enum"] = ["1", "0"]
    elif field.kind is Kind.ZIP:
        schema["pattern"] = "^[0-9]{5}$"
    elif field.kind in (Kind.URL, Kind.CERTIFICATE):
        schema["format"] = "uri"
    elif field.kind is Kind.EMAIL:
        schema["format"] = "email"
    if field.max_len and "enum" not in schema:
        schema["maxLength"] = field.max_len
    schema["example"] = mode if field.kind is Kind.MODE else field.example
    return schema


def _request(mode: str) -> dict[str, Any]:
    """A request of one mode: one of the lead types' (its TYPE says which)."""
    return {"oneOf": [{"$ref": f"#/components/schemas/{_typed(mode, t)}"} for t in TABLES.values()]}


def _typed(mode: str, lead_table: Table) -> str:
    """The name of a lead type's request schema: PingHomeImprovementRequest."""
    words = lead_table.lead_type.name.title().replace(" ", "")
    return f"{mode.capitalize()}{''.join(c for c in words if c.isalnum())}Request"


def _type_request(mode: str, lead_table: Table) -> dict[str, Any]:
    """A request of one mode and lead type as one object: a form's fields, a query string, a
    JSON object. Its Mode may be left out: the route says it (the routes of every mode require
    it)."""
    looked_up = lead_table.looked_up
    fields = [f for f in lead_table.fields if not (mode == "full" and f.name == LEAD_ID)]
    needed = [f.name for f in fields if f.required(mode) is Need.YES and f.kind is not Kind.MODE]
    request: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: _schema(f, mode) for f in fields},
        "required": [name for name in needed if name not in looked_up],
        "additionalProperties": {"type": "string"},
    }
    # A field looked up from another is required only when that other is not sent.
    either = [[name, looked_up[name]] for name in needed if name in looked_up]
    if either:
        request["allOf"] = [{"anyOf": [{"required": [one]} for one in pair]} for pair in either]
    return request


def _any_request() -> dict[str, Any]:
    """A request of the routes that take every mode: its Mode says which."""
    return {
        "oneOf": [
            {"allOf": [{"$ref": f"#/components/schemas/{_name(mode)}"}, {"required": [MODE]}]}
            for mode in MODES
        ]
    }


def _name(mode: str | None) -> str:
    return f"{mode.capitalize()}Request" if mode else "Request"


def _answer_content(statuses: list[str]) -> dict[str, Any]:
    """An answer's media types: the spec's XML, JSON with Format=JSON, a page for a browser."""
    response = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"enum": statuses}, "error": {"type": "string"}},
    }
    return {
        XML: {"schema": {"type": "string"}},
        JSON: {
            "schema": {
                "type": "object",
                "required": ["response"],
                "properties": {"response": response},
            }
        },
        "text/html": {"schema": {"type": "string"}},
    }


def _answers() -> dict[str, Any]:
    answer = {
        "description": "The answer: Matched or Unmatched (Success or Error as the vendor asks)",
        "content": _answer_content([MATCHED, UNMATCHED, SUCCESS, ERROR]),
    }
    errors = {
        status: {"description": f"{text}: an error answer", "content": _answer_content([ERROR])}
        for status, text in _errors().items()
    }
    redirect = {"description": "A browser's form goes back to the vendor's Redirect_URL"}
    return {"200": answer, "303": redirect, **errors}


def _operation(route: Route, method: str) -> dict[str, Any]:
    mode = MODE_OF.get(route.function_id)
    schema = {"$ref": f"#/components/schemas/{_name(mode)}"}
    operation: dict[str, Any] = {
        "operationId": f"{method}_{route.path.strip('/').replace('/', '_').replace('.', '_')}",
        "summary": f"A {mode} request" if mode else "A ping, post or full request, by its Mode",
    }
    if method == "get":
        # The request's fields, each a parameter of the query string.
        operation["parameters"] = [
            {
                "name": "fields",
                "in": "query",
                "required": True,
                "style": "form",
                "explode": True,
                "schema": schema,
            }
        ]
    else:
        operation["requestBody"] = {
            "required": True,
            "description": "The fields as a form, a JSON object or the spec's XML <Request>",
            "content": {
                FORM: {"schema": dict(schema)},
                JSON: {"schema": dict(schema)},
                XML: {"schema": {"type": "string"}},
            },
        }
    operation["responses"] = {
        status: {"$ref": f"#/components/responses/{status}"} for status in _answers()
    }
    return operation


RETURNS = "/returns"


def _returns() -> dict[str, Any]:
    """POST /returns: a partner returns a lead it bought (JSON; its return key as a Bearer)."""
    from pingpost import returns

    said = {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string"},
            "lead_id": {"type": "integer"},
            "partner_id": {"type": "integer"},
            "error": {"type": "string"},
        },
    }
    answers = {
        "200": "Returned, or `returned already` (nothing changed)",
        "400": "The body is not the JSON object described",
        "401": "No return key, or not a partner's",
        "404": "The partner did not buy this lead",
        "422": "The partner takes no returns, or the sale is past its return window",
        "503": "Storage unavailable; retry",
    }
    return {
        "operationId": "post_returns",
        "summary": "A partner returns a lead it bought, within its return_days",
        "security": [{"returnKey": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["lead_id", "reason"],
                        "properties": {
                            "lead_id": {"type": "integer", "minimum": 1},
                            "reason": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": returns.MOST_REASON,
                            },
                        },
                    }
                }
            },
        },
        "responses": {
            status: {"description": text, "content": {"application/json": {"schema": said}}}
            for status, text in answers.items()
        },
    }


def document(template: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the template's HTTP API."""
    paths: dict[str, dict[str, Any]] = {}
    for route in http_routes(template):
        methods = ["get", "post"] if route.method == "ANY" else [route.method.lower()]
        for method in methods:
            if route.path == STYLESHEET:
                operation: dict[str, Any] = {
                    "operationId": "get_response_xsl",
                    "summary": "The XSL stylesheet the XML answers name",
                    "responses": {
                        "200": {
                            "description": "The stylesheet",
                            "content": {"text/xsl": {"schema": {"type": "string"}}},
                        }
                    },
                }
            elif route.path == RETURNS:
                operation = _returns()
            else:
                operation = _operation(route, method)
            paths.setdefault(route.path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pingPostLead",
            "version": "1",
            "description": (
                "The pingPostLead API (Home Improvement, TYPE=7): ping a partial lead, post the"
                " rest, or send both at once (full). Generated from the field table and the"
                " template by `pingpost openapi`; do not edit."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {
                **{_name(mode): _request(mode) for mode in MODES},
                **{
                    _typed(mode, t): _type_request(mode, t)
                    for mode in MODES
                    for t in TABLES.values()
                },
                _name(None): _any_request(),
            },
            "responses": _answers(),
            "securitySchemes": {
                "returnKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A partner's return key (pingpost partners rotate-key)",
                }
            },
        },
    }


def openapi_yaml(template: Mapping[str, Any]) -> str:
    """The document as openapi.yaml holds it."""
    text: str = yaml.safe_dump(document(template), sort_keys=False, allow_unicode=True, width=100)
    return text


def html_page(described: Mapping[str, Any]) -> str:
    """The document as one self-contained page: each route, then each request's fields."""
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{escape(described['info']['title'])}</title>",
        "<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}</style>",
        f"</head><body><h1>{escape(described['info']['title'])}</h1>",
        f"<p>{escape(described['info']['description'])} <a href=openapi.yaml>openapi.yaml</a></p>",
        "<h2>Routes</h2><table><tr><th>Method</th><th>Path</th><th>What</th></tr>",
    ]
    for path, item in described["paths"].items():
        for method, operation in item.items():
            out.append(
                f"<tr><td>{method.upper()}</td><td>{escape(path)}</td>"
                f"<td>{escape(operation['summary'])}</td></tr>"
            )
    out.append("</table>")
    for name, schema in described["components"]["schemas"].items():
        if "properties" not in schema:
            continue
        out += [
            f"<h2 id={name}>{name}</h2>",
            "<table><tr><th>Field</th><th>Required</th><th>Value</th><th>Example</th></tr>",
        ]
        either = {pair[0]["required"][0]: pair[1]["required"][0] for pair in _pairs(schema)}
        for field, value in schema["properties"].items():
            needed = "yes" if field in schema["required"] else ""
            if field in either:
                needed = f"yes, or {either[field]}"
            out.append(
                f"<tr><td>{escape(field)}</td><td>{needed}</td>"
                f"<td>{escape(value['description'])}</td><td>{escape(value['example'])}</td></tr>"
            )
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _pairs(schema: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
    """The fields a schema requires one or the other of (a state or the ZIP it is looked up
    from): each `anyOf` of its `allOf`."""
    return [rule["anyOf"] for rule in schema.get("allOf", [])]


PAGES: Final = ("/openapi.yaml", "/docs")


def pages(template: Mapping[str, Any]) -> dict[str, tuple[str, bytes]]:
    """What `pingpost serve` answers at PAGES: content type and body."""
    return {
        "/openapi.yaml": ("application/yaml", openapi_yaml(template).encode()),
        "/docs": ("text/html; charset=utf-8", html_page(document(template)).encode()),
    }

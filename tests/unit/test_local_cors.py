"""The local gateway's CORS, as API Gateway HTTP API applies an HttpApi's CorsConfiguration."""

from pathlib import Path
from typing import Any

import pytest

from pingpost_local.cors import CorsError, merge_origins, parse_origin
from pingpost_local.functions import LocalFunction
from pingpost_local.gateway import Gateway, HttpRequest, HttpResponse

FORMS = "https://forms.example.com"
OTHER = "https://evil.example"

# A function that sets its own CORS and Vary headers, as a handler might.
HANDLER = """
def lambda_handler(event, context):
    return {
        "statusCode": 200,
        "headers": {"content-type": "text/plain", "Access-Control-Allow-Origin": "*",
                    "Vary": "Accept"},
        "body": event["requestContext"]["http"]["method"],
    }
"""

TEMPLATE = """
Parameters:
  CorsOrigins: {Type: CommaDelimitedList, Default: ""}
Conditions:
  HasCorsOrigins: !Not [!Equals [!Join ["", !Ref CorsOrigins], ""]]
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      CorsConfiguration: !If
        - HasCorsOrigins
        - AllowOrigins: !Ref CorsOrigins
          AllowMethods: [GET, POST, OPTIONS]
          AllowHeaders: [content-type, accept, idempotency-key]
          MaxAge: 600
          AllowCredentials: false
        - !Ref AWS::NoValue
  Form:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: .
      Handler: app.lambda_handler
      Events:
        Get: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /form, Method: GET}}
        Post: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /form, Method: POST}}
        Any: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /any, Method: ANY}}
"""


@pytest.fixture
def template(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(HANDLER, encoding="utf-8")
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    return path


@pytest.fixture
def invoked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths functions were invoked for."""
    calls: list[str] = []
    original = LocalFunction.invoke

    def invoke(self: LocalFunction, event: dict[str, Any]) -> Any:
        calls.append(event["rawPath"])
        return original(self, event)

    monkeypatch.setattr(LocalFunction, "invoke", invoke)
    return calls


def gateway(template: Path, origins: str) -> Gateway:
    return Gateway(template, parameters={"CorsOrigins": origins})


def preflight(path: str, origin: str) -> HttpRequest:
    return HttpRequest(
        "OPTIONS",
        path,
        [
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
    )


def cors_headers(response: HttpResponse) -> dict[str, str]:
    return {
        name.lower(): value
        for name, value in response.headers
        if name.lower().startswith("access-control-")
    }


def test_an_allowed_origin_gets_its_preflight_answered_without_running_a_function(
    template: Path, invoked: list[str]
) -> None:
    response = gateway(template, f"{FORMS},http://localhost:8080").handle(preflight("/form", FORMS))
    assert response.status == 204
    assert response.body == b""
    assert cors_headers(response) == {
        "access-control-allow-origin": FORMS,
        "access-control-allow-methods": "GET,POST,OPTIONS",
        "access-control-allow-headers": "content-type,accept,idempotency-key",
        "access-control-max-age": "600",
    }
    assert response.header("vary") == "Origin"
    assert invoked == []


def test_another_origin_gets_a_204_preflight_with_no_grant(
    template: Path, invoked: list[str]
) -> None:
    cors = gateway(template, FORMS)
    for origin in (OTHER, "http://forms.example.com", "https://forms.example.com:8443", "null"):
        response = cors.handle(preflight("/form", origin))
        assert response.status == 204
        assert cors_headers(response) == {}
    assert invoked == []


def test_origins_match_exactly_but_scheme_and_host_case_do_not_matter(template: Path) -> None:
    cors = gateway(template, "HTTPS://Forms.Example.com")
    assert cors.cors is not None
    assert cors.cors.origins == (FORMS,)
    response = cors.handle(preflight("/form", FORMS))
    assert response.header("access-control-allow-origin") == FORMS
    assert cors_headers(cors.handle(preflight("/form", f"{FORMS}.evil.example"))) == {}


def test_an_allowed_origin_is_granted_on_the_answer_and_the_functions_cors_is_ignored(
    template: Path, invoked: list[str]
) -> None:
    cors = gateway(template, FORMS)
    response = cors.handle(HttpRequest("POST", "/form", [("Origin", FORMS)], b"a=1"))
    assert response.status == 200
    assert response.body == b"POST"
    # The function said "*": API Gateway ignores a function's CORS headers.
    assert cors_headers(response) == {"access-control-allow-origin": FORMS}
    assert response.header("vary") == "Accept, Origin"
    assert invoked == ["/form"]

    refused = cors.handle(HttpRequest("POST", "/form", [("Origin", OTHER)], b"a=1"))
    assert refused.status == 200  # the browser, not the exchange, withholds the answer
    assert cors_headers(refused) == {}
    no_origin = cors.handle(HttpRequest("GET", "/form", []))
    assert cors_headers(no_origin) == {}


def test_a_route_taking_options_gets_the_preflight(template: Path, invoked: list[str]) -> None:
    response = gateway(template, FORMS).handle(preflight("/any", FORMS))
    assert invoked == ["/any"]
    assert response.status == 200
    assert response.header("access-control-allow-origin") == FORMS
    assert response.header("access-control-max-age") == "600"


def test_without_cors_options_is_routed_like_any_method(template: Path, invoked: list[str]) -> None:
    plain = gateway(template, "")
    assert plain.cors is None
    response = plain.handle(preflight("/form", FORMS))
    assert response.status == 404
    assert cors_headers(response) == {}
    answered = plain.handle(HttpRequest("GET", "/form", [("Origin", FORMS)]))
    assert cors_headers(answered) == {"access-control-allow-origin": "*"}  # the function's own
    assert invoked == ["/form"]


def test_an_options_request_that_is_no_preflight_is_routed(template: Path) -> None:
    # Without Access-Control-Request-Method it is not a preflight: /form has no OPTIONS route.
    response = gateway(template, FORMS).handle(HttpRequest("OPTIONS", "/form", [("Origin", FORMS)]))
    assert response.status == 404
    assert response.header("access-control-allow-origin") == FORMS


@pytest.mark.parametrize("origins", ["*", f"{FORMS},*", "https://*.example.com"])
def test_a_wildcard_origin_is_refused_when_the_gateway_is_built(
    template: Path, origins: str
) -> None:
    with pytest.raises(CorsError, match="is refused: '\\*' would let any site"):
        gateway(template, origins)


def test_parse_origin_normalises_and_refuses_what_is_no_origin() -> None:
    assert parse_origin(" HTTPS://Forms.Example.COM ") == FORMS
    assert parse_origin("http://127.0.0.1:3000") == "http://127.0.0.1:3000"
    assert parse_origin("http://[::1]:8080") == "http://[::1]:8080"
    for bad, reason in [
        ("*", "refused"),
        ("forms.example.com", "http"),
        ("ftp://forms.example.com", "http"),
        (f"{FORMS}/", "no path"),
        (f"{FORMS}/form.html", "no path"),
        (f"{FORMS}?a=1", "no path"),
        ("https://user@forms.example.com", "user"),
        ("https://forms.example.com:99999", "not an origin"),
        ("", "http"),
    ]:
        with pytest.raises(CorsError, match=reason):
            parse_origin(bad)


def test_merge_origins_adds_each_origin_once() -> None:
    assert merge_origins("", [FORMS]) == FORMS
    assert merge_origins(f"{FORMS}, {OTHER}", [OTHER, "http://127.0.0.1:3000"]) == (
        f"{FORMS},{OTHER},http://127.0.0.1:3000"
    )

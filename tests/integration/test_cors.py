"""Browser forms on other origins: `pingpost serve --cors-origin` does CORS as the HttpApi would."""

import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import ROOT, Server, serve_process
from tests.leads import complete

FORMS = "https://forms.example.com"
OTHER = "https://elsewhere.example"


@pytest.fixture(scope="module")
def serving() -> Iterator[Server]:
    """`pingpost serve --cors-origin https://forms.example.com --seed demo/seed.json`."""
    with serve_process("--partner-port", "-1", "--cors-origin", FORMS) as running:
        yield running


def preflight(serving: Server, origin: str, path: str = "/api.php") -> requests.Response:
    """What a browser sends before posting a form with a non-simple header."""
    return requests.options(
        serving.url + path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,idempotency-key",
        },
        timeout=30,
    )


def grants(response: requests.Response) -> dict[str, str]:
    return {
        name.lower(): value
        for name, value in response.headers.items()
        if name.lower().startswith("access-control-")
    }


def test_a_form_on_an_allowed_origin_may_post_after_its_preflight(serving: Server) -> None:
    response = preflight(serving, FORMS)
    assert response.status_code == 204
    assert grants(response) == {
        "access-control-allow-origin": FORMS,
        "access-control-allow-methods": "GET,POST,OPTIONS",
        "access-control-allow-headers": "content-type,accept,idempotency-key",
        "access-control-max-age": "600",
    }
    assert response.headers["Vary"] == "Origin"
    assert response.content == b""
    assert "Content-Length" not in response.headers  # a 204 has no body to measure


def test_a_form_on_another_origin_gets_no_grant(serving: Server) -> None:
    response = preflight(serving, OTHER)
    assert response.status_code == 204
    assert grants(response) == {}
    posted = requests.post(
        serving.url + "/api.php", data=complete("ping"), headers={"Origin": OTHER}, timeout=30
    )
    assert posted.status_code == 200
    assert grants(posted) == {}


def test_a_post_from_an_allowed_origin_is_answered_with_its_grant(serving: Server) -> None:
    response = requests.post(
        serving.url + "/api.php",
        data=complete("ping", Skip_XSL="1"),
        headers={"Origin": FORMS},
        timeout=30,
    )
    assert response.status_code == 200
    assert "<status>Matched</status>" in response.text
    assert grants(response) == {"access-control-allow-origin": FORMS}
    assert "Origin" in [token.strip() for token in response.headers["Vary"].split(",")]


def test_the_exchanges_own_origin_is_always_allowed(serving: Server) -> None:
    response = preflight(serving, serving.url)
    assert response.headers["Access-Control-Allow-Origin"] == serving.url


def test_the_banner_lists_the_allowed_origins(serving: Server) -> None:
    assert f"Browser origins (CORS): {FORMS}, {serving.url}\n" in serving.output


def _cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pingpost_local.cli", "serve", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        ("*", "'*' is refused"),
        ("https://forms.example.com/form.html", "no path"),
        ("forms.example.com", "http(s)://host[:port]"),
    ],
)
def test_serve_refuses_a_cors_origin_that_is_not_one_named_origin(origin: str, reason: str) -> None:
    done = _cli("--port", "0", "--cors-origin", origin)
    assert done.returncode == 2
    assert "--cors-origin" in done.stderr
    assert reason in done.stderr

"""Browser forms on other origins: `pingpost serve --cors-origin` does CORS as the HttpApi would."""

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.conftest import DEMO_SEED, ROOT
from tests.leads import complete

FORMS = "https://forms.example.com"
OTHER = "https://elsewhere.example"


@dataclass(frozen=True)
class Serving:
    url: str
    output: list[str]


@pytest.fixture(scope="module")
def serving() -> Iterator[Serving]:
    """`pingpost serve --cors-origin https://forms.example.com --seed demo/seed.json`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env |= {"PYTHONUNBUFFERED": "1", "POWERTOOLS_METRICS_DISABLED": "true"}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "pingpost.cli", "serve", "--port", "0"),
            *("--seed", str(DEMO_SEED), "--partner-port", "-1", "--cors-origin", FORMS),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    url, output = "", []
    for line in process.stdout:
        output.append(line)
        if found := re.search(r"listening on (\S+)", line):
            url = found.group(1)
        if "curl" in line:  # the seed is loaded
            break
    assert url, "".join(output)
    # Keep reading its output, or the server blocks once the pipe is full.
    threading.Thread(target=output.extend, args=(process.stdout,), daemon=True).start()
    try:
        yield Serving(url, output)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def preflight(serving: Serving, origin: str, path: str = "/api.php") -> requests.Response:
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


def test_a_form_on_an_allowed_origin_may_post_after_its_preflight(serving: Serving) -> None:
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


def test_a_form_on_another_origin_gets_no_grant(serving: Serving) -> None:
    response = preflight(serving, OTHER)
    assert response.status_code == 204
    assert grants(response) == {}
    posted = requests.post(
        serving.url + "/api.php", data=complete("ping"), headers={"Origin": OTHER}, timeout=30
    )
    assert posted.status_code == 200
    assert grants(posted) == {}


def test_a_post_from_an_allowed_origin_is_answered_with_its_grant(serving: Serving) -> None:
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


def test_the_exchanges_own_origin_is_always_allowed(serving: Serving) -> None:
    response = preflight(serving, serving.url)
    assert response.headers["Access-Control-Allow-Origin"] == serving.url


def test_the_banner_lists_the_allowed_origins(serving: Serving) -> None:
    assert f"Browser origins (CORS): {FORMS}, {serving.url}\n" in serving.output


def _cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pingpost.cli", "serve", *arguments],
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

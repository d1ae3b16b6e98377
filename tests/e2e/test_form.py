"""The publishers' web form in a real browser (headless Chromium) against `pingpost serve`.

A consumer fills the form at /form and lands on the vendor's thank-you page; the lead is then
sold, as `pingpost lead show` says. With JavaScript the form pings, then posts; without it the
browser posts the whole lead and the exchange sends it to Redirect_URL.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.conftest import Server, serve_process

# Debian's package; `make test` installs it where it can (root with apt-get). Without it these
# tests fail, unless whoever runs them opts out by name: SKIP_BROWSER=1 skips them, and pytest's
# summary says so.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OPTED_OUT = os.environ.get("SKIP_BROWSER", "") not in ("", "0")
# Headless on a machine with no network but loopback: nothing of Chromium's own may call out.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CONSUMER = {
    "#first": "Jane",
    "#last": "Roe",
    "#address": "1 Oak St.",
    "#city": "Chicago",
    "#email": "jane@example.com",
    "#phone": "(312) 555-0142",
}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        OPTED_OUT, reason="opted out with SKIP_BROWSER=1: the web form was not tried in a browser"
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.fail(
            "no Chromium to try the web form in: install it (apt-get install chromium, or make"
            " browser as root), or opt out of these tests with SKIP_BROWSER=1",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def fill(page: Any, product: str = "Roofing - Metal", zip_code: str = "60610") -> None:
    page.select_option("#product", product)
    page.fill("#zip", zip_code)
    for selector, value in CONSUMER.items():
        page.fill(selector, value)
    page.check("input[name=TCPA_Consent]")


def lead_show(server: Server, lead_id: str, *options: str) -> str:
    """`pingpost lead show` from another shell, as the banner of `pingpost serve` says."""
    shown = server.pingpost("lead", "show", lead_id, *options)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def sold(server: Server, lead_id: str) -> str:
    """`pingpost lead show --pii` of a lead the demo vendor's form sold: the browser's request
    gave no IP_Address, so the lead holds the address the request came from."""
    shown = lead_show(server, lead_id, "--pii")
    assert f"Lead {lead_id}  vendor demo  status sold" in shown
    assert shown_field(shown, "IP_Address") == "127.0.0.1"
    return shown


def shown_field(shown: str, name: str) -> str | None:
    """A field's value in the Data part of `pingpost lead show`."""
    found = re.search(rf"^  {name} +(.+)$", shown, re.MULTILINE)
    return None if found is None else found.group(1)


def landed(page: Any, server: Server) -> dict[str, str]:
    """The thank-you page the browser is on, and the outcome in its query."""
    page.wait_for_url(f"{server.url}/thanks?**")
    url = urlsplit(page.url)
    return dict(parse_qsl(url.query))


def test_with_javascript_the_form_pings_then_posts_and_lands_on_the_thank_you_page(
    server: Server, browser: Any
) -> None:
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(f"{request.method} {request.url}"))
    page.goto(f"{server.url}/form")

    # As soon as the project and the ZIP code are known, the form says the lead can be placed
    page.select_option("#product", "Roofing - Metal")
    page.fill("#zip", "60610")
    placement = page.locator("#placement")
    placement.filter(has_text="Good news").wait_for()
    assert requests[-1] == f"POST {server.url}/ping"

    # When the consumer fills in the rest and sends it
    fill(page)
    page.click("button[type=submit]")

    # Then the browser lands on the thank-you page with the lead's number
    told = landed(page, server)
    assert told["status"] == "Matched"
    assert page.locator("#outcome").inner_text() == f"Your request number is {told['lead_id']}."
    assert f"POST {server.url}/post" in requests
    assert f"POST {server.url}/full" not in requests

    # ... and the lead the ping made is sold, with what the browser filled in for the consumer
    shown = sold(server, told["lead_id"])
    assert shown_field(shown, "Landing_Page") == f"{server.url}/form"
    assert shown_field(shown, "TCPA_Consent") == "Yes"
    assert re.search(r" ping +Matched.*\n.* post +received\n.* sale +sold to partner 142 ", shown)
    page.close()


def test_without_javascript_the_browser_posts_the_lead_and_is_sent_to_the_thank_you_page(
    server: Server, browser: Any
) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server.url}/form")
    fill(page, product="Gutters")
    page.click("button[type=submit]")

    told = landed(page, server)
    assert told["status"] == "Matched"
    shown = sold(server, told["lead_id"])
    assert shown_field(shown, "Landing_Page") == "web-form"  # no script filled in the page's URL
    assert shown_field(shown, "Home_Improvement_Product") == "Gutters"
    assert re.search(r" full +received\n.* sale +sold to partner 510 ", shown)
    context.close()


def test_a_refused_field_is_shown_on_the_form_and_nothing_is_lost(
    server: Server, browser: Any
) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/form")
    fill(page)
    page.fill("#phone", "555-0142")  # seven digits: the exchange wants ten
    page.click("button[type=submit]")

    problem = page.locator("#problem")
    problem.filter(has_text="Home_Phone").wait_for()
    assert page.url == f"{server.url}/form"
    assert page.locator("button[type=submit]").is_enabled()

    # Corrected, the same form goes through
    page.fill("#phone", "3125550142")
    page.click("button[type=submit]")
    assert landed(page, server)["status"] == "Matched"
    page.close()


def test_a_zip_code_that_does_not_exist_is_said_before_the_consumer_goes_on(
    server: Server, browser: Any
) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/form")
    page.select_option("#product", "Gutters")
    page.fill("#zip", "00000")
    page.locator("#placement").filter(has_text="Zip").wait_for()
    page.close()


@pytest.mark.long
def test_the_form_as_one_static_file_on_the_vendors_own_site(browser: Any, tmp_path: Path) -> None:
    from pingpost_local.cli import main

    # Given the vendor's site on another origin, serving the file `pingpost form` wrote and a
    # thank-you page of its own
    (tmp_path / "thanks.html").write_text("<title>Thanks from the vendor</title><p>Thanks!</p>")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    vendor_site = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    site = f"http://127.0.0.1:{vendor_site.server_address[1]}"
    threading.Thread(target=vendor_site.serve_forever, daemon=True).start()
    with (
        vendor_site,
        serve_process("--partner-port", "0", "--cors-origin", site) as exchange,
    ):
        main(
            [
                "form",
                "--url",
                exchange.url,
                "--key",
                "demo-key-0123456789abcdef",
                "--thanks",
                f"{site}/thanks.html",
                "--product",
                "Roofing - Metal",
                "-o",
                str(tmp_path / "form.html"),
            ]
        )
        for scripts in (True, False):
            context = browser.new_context(java_script_enabled=scripts)
            page = context.new_page()
            page.goto(f"{site}/form.html")
            if scripts:  # the ping crosses origins: the exchange's CORS lets the page read it
                page.select_option("#product", "Roofing - Metal")
                page.fill("#zip", "60610")
                page.locator("#placement").filter(has_text="Good news").wait_for()
            fill(page)
            page.click("button[type=submit]")

            # Then the consumer lands on the vendor's own thank-you page, the lead sold
            page.wait_for_url(f"{site}/thanks.html?**")
            told = dict(parse_qsl(urlsplit(page.url).query))
            assert told["status"] == "Matched", told
            shown = lead_show(exchange, told["lead_id"])
            assert f"Lead {told['lead_id']}  vendor demo  status sold" in shown
            context.close()
        vendor_site.shutdown()


def test_a_lead_whose_ping_went_unanswered_is_sent_whole(server: Server, browser: Any) -> None:
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(f"{request.method} {request.url}"))
    # The ping never reaches the exchange (a network that drops it)
    page.route(f"{server.url}/ping", lambda route: route.abort())
    page.goto(f"{server.url}/form")
    fill(page)
    page.click("button[type=submit]")

    told = landed(page, server)
    assert told["status"] == "Matched"
    assert f"POST {server.url}/ping" in requests
    assert f"POST {server.url}/full" in requests
    assert f"POST {server.url}/post" not in requests
    shown = lead_show(server, told["lead_id"])
    assert re.search(r" full +received\n.* sale +sold to partner 142 ", shown)
    page.close()


def test_a_lead_pinged_unmatched_is_posted_with_its_lead_id(server: Server, browser: Any) -> None:
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(f"{request.method} {request.url}"))

    # The demo always has a buyer: the ping's answer is turned into Unmatched on its way back
    def unmatched(route: Any) -> None:
        answer = route.fetch()
        told = answer.json()
        told["response"]["status"] = "Unmatched"
        route.fulfill(response=answer, json=told)

    page.route(f"{server.url}/ping", unmatched)
    page.goto(f"{server.url}/form")
    page.select_option("#product", "Bathroom Remodel")
    page.fill("#zip", "60610")
    page.locator("#placement").filter(has_text="No pro near 60610").wait_for()
    fill(page, product="Bathroom Remodel")
    page.click("button[type=submit]")

    # The post matches the lead again (one lead, not a second one sent whole)
    told = landed(page, server)
    assert told["status"] == "Matched"
    assert f"POST {server.url}/post" in requests
    assert f"POST {server.url}/full" not in requests
    shown = lead_show(server, told["lead_id"])
    assert re.search(r" ping +Matched.*\n.* post +received\n.* sale +sold to partner 225 ", shown)
    page.close()

"""The publishers' web form: one static HTML file, and the demo's thank-you page.

`pingpost form` writes the file for a deployed exchange; `pingpost serve` serves it at /form
with the demo vendor's Key, its products and a thank-you page of its own at /thanks.
"""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from pingpost.fields import PRODUCTS

HTML: Final = "text/html; charset=utf-8"
FORM_PATH: Final = "/form"
THANKS_PATH: Final = "/thanks"
# What the consumer agrees to by ticking the box; sent with the lead as TCPA_Language.
CONSENT: Final = (
    "By ticking this box I agree that up to four home improvement companies may call and text"
    " me at the number above about my project, including by autodialer. Consent is not a"
    " condition of purchase."
)
_TEMPLATE: Final = Path(__file__).with_name("form.html")

# A page served locally: its content type and body, made from the exchange's own URL.
Page = Callable[[str], tuple[str, bytes]]


def render(
    *,
    exchange: str,
    key: str,
    thanks: str,
    products: Sequence[str] = PRODUCTS,
    source: str = "web-form",
    score: int = 10,
    landing: str = "web-form",
) -> str:
    """The form posting to `exchange` ("" for the page's own origin) as the vendor with `key`.

    `thanks` is the vendor's thank-you page: an absolute http(s) URL whose host the vendor
    lists in its redirect_hosts. Raises ValueError for an unknown product or a bad URL.
    """
    unknown = [p for p in products if p not in PRODUCTS]
    if unknown or not products:
        raise ValueError(f"products must be some of the field table's: not {unknown or 'none'}")
    for name, url in (("exchange", exchange), ("thanks", thanks)):
        parts = urlsplit(url)
        if (url or name == "thanks") and (
            parts.scheme not in ("http", "https") or not parts.netloc
        ):
            raise ValueError(f"{name} must be an absolute http(s) URL: {url!r}")
    options = "\n".join(
        f'    <option value="{html.escape(p)}">{html.escape(p)}</option>' for p in products
    )
    values = {
        "@EXCHANGE@": exchange.rstrip("/"),
        "@KEY@": key,
        "@THANKS@": thanks,
        "@SRC@": source,
        "@SCORE@": str(score),
        "@LANDING@": landing,
        "@CONSENT@": CONSENT,
    }
    page = _TEMPLATE.read_text(encoding="utf-8").replace("@PRODUCTS@", options)
    for token, value in values.items():
        page = page.replace(token, html.escape(value))
    return page


def thanks_page() -> str:
    """The demo vendor's thank-you page: the outcome the form or the exchange put in its query."""
    return """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Thank you</title>
<style>body { font: 16px/1.5 system-ui, sans-serif; max-width: 34rem; margin: 3rem auto; }</style>
</head><body>
<h1>Thank you!</h1>
<p id="outcome">Your request was received.</p>
<p><a href="/form">Send another request</a></p>
<script>
  var told = new URLSearchParams(location.search);
  var outcome = document.getElementById("outcome");
  if (told.get("status") === "Error") {
    document.querySelector("h1").textContent = "Your request was not sent";
    outcome.textContent = told.get("error") || "";
  } else if (told.get("lead_id")) {
    outcome.textContent = "Your request number is " + told.get("lead_id") + ".";
  }
</script>
</body></html>
"""


def demo_pages(key: str, products: Sequence[str]) -> dict[str, Page]:
    """/form for the vendor with `key`, posting to the exchange serving it, and /thanks."""

    def form(url: str) -> tuple[str, bytes]:
        page = render(exchange="", key=key, thanks=url + THANKS_PATH, products=products)
        return HTML, page.encode()

    return {FORM_PATH: form, THANKS_PATH: lambda url: (HTML, thanks_page().encode())}


def form_command(args: argparse.Namespace) -> None:
    """Write the form for a deployed exchange."""
    try:
        page = render(
            exchange=args.url,
            key=args.key,
            thanks=args.thanks,
            products=args.product or PRODUCTS,
            source=args.src,
            score=args.score,
        )
    except ValueError as error:
        raise SystemExit(f"pingpost form: {error}") from None
    if args.output is None:
        sys.stdout.write(page)
    else:
        args.output.write_text(page, encoding="utf-8")


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`pingpost form`."""
    made = commands.add_parser(
        "form",
        help="write the web form (one static HTML file) for a vendor of a deployed exchange",
        description="Write the web form as one HTML file. Its Key is public: anyone who opens"
        " the page can read it. The vendor must list the thank-you page's host in its"
        " redirect_hosts, and the exchange's CorsOrigins must name the page's origin.",
    )
    made.add_argument(
        "--url", required=True, help="the exchange's URL, e.g. https://api.example.com"
    )
    made.add_argument("--key", required=True, help="the vendor's Key")
    made.add_argument("--thanks", required=True, help="the vendor's thank-you page (absolute URL)")
    made.add_argument(
        "--product",
        action="append",
        choices=PRODUCTS,
        metavar="PRODUCT",
        help="a Home_Improvement_Product to offer (repeatable; default: all of them)",
    )
    made.add_argument("--src", default="web-form", help="the SRC of its leads (default web-form)")
    made.add_argument("--score", type=int, default=10, help="the Score of its leads (default 10)")
    made.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    made.set_defaults(handler=form_command)

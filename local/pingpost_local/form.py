"""The publishers' web form: one static HTML file, and the demo's thank-you page.

`pingpost form` writes the file for a deployed exchange; `pingpost serve` serves it at /form
with the demo vendor's Key, its products and a thank-you page of its own at /thanks. That form
is Home Improvement's (it pings as soon as it can); `--type N` and `/form?type=N` make a plain
form of any lead type's fields from its table (`typed`), which a browser posts whole
(`Mode=full`) and the exchange answers by sending it to the thank-you page.
"""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from pingpost.fields import (
    LEAD_TYPE,
    PRODUCTS,
    SOURCE_ADDRESS,
    TABLES,
    TYPE,
    Field,
    Kind,
    Need,
    Table,
)

HTML: Final = "text/html; charset=utf-8"
FORM_PATH: Final = "/form"
THANKS_PATH: Final = "/thanks"
# What the consumer agrees to by ticking the box; sent with the lead as TCPA_Language.
CONSENT: Final = (
    "By ticking this box I agree that up to four home improvement companies may call and text"
    " me at the number above about my project, including by autodialer. Consent is not a"
    " condition of purchase."
)
# ... and what a form of another lead type says (`typed`).
TYPED_CONSENT: Final = (
    "By ticking this box I agree that up to four companies may call and text me at the number"
    " above about my request, including by autodialer. Consent is not a condition of purchase."
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


# Fields a typed form sends as hidden inputs, or leaves to the browser (its address).
_HIDDEN: Final = frozenset({"SRC", "Landing_Page", SOURCE_ADDRESS, "TCPA_Consent", "TCPA_Language"})


def _input(field: Field, required: bool) -> str:
    """The label and input of one field."""
    name = html.escape(field.name)
    need = " required" if required else ""
    label = field.name.replace("_", " ")
    if field.kind is Kind.CHOICE:
        blank = "" if required else '<option value=""></option>'
        options = "".join(
            f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in field.values
        )
        control = f'<select name="{name}"{need}>{blank}{options}</select>'
    elif field.kind is Kind.FLAG:
        control = f'<input type="checkbox" name="{name}" value="1">'
    else:
        kinds = {Kind.EMAIL: "email", Kind.PHONE: "tel", Kind.INTEGER: "number", Kind.URL: "url"}
        extra = ""
        if field.kind is Kind.INTEGER:
            bounds = {"min": field.least, "max": field.most}
            extra = "".join(f' {k}="{v}"' for k, v in bounds.items() if v is not None)
        if field.kind is Kind.DATE:
            extra = f' placeholder="{html.escape(" or ".join(field.formats))}"'
        kind = kinds.get(field.kind, "text")
        control = f'<input type="{kind}" name="{name}" maxlength="{field.max_len}"{extra}{need}>'
    return f"  <label>{html.escape(label)} {control}</label>"


def typed(lead_table: Table, *, exchange: str, key: str, thanks: str, source: str) -> str:
    """A plain form of a lead type's fields posting a whole lead (Mode=full) to `exchange`
    ("" for the page's own origin): the fields a full lead requires, then those partners filter
    on, and the consumer's consent when the type takes it."""
    for name, url in (("exchange", exchange), ("thanks", thanks)):
        parts = urlsplit(url)
        if (url or name == "thanks") and (
            parts.scheme not in ("http", "https") or not parts.netloc
        ):
            raise ValueError(f"{name} must be an absolute http(s) URL: {url!r}")
    kind = lead_table.lead_type
    hidden = {
        "Key": key,
        "API_Action": "pingPostLead",
        "Mode": "full",
        TYPE: kind.type,
        "Redirect_URL": thanks,
    }
    if "SRC" in lead_table.by_name:
        hidden["SRC"] = source
    if "Landing_Page" in lead_table.by_name:
        hidden["Landing_Page"] = source
    shown = [
        f
        for f in lead_table.fields
        if not f.control
        and f.name not in _HIDDEN
        and f.name not in lead_table.looked_up
        and (f.required("full") is Need.YES or f.match)
    ]
    lines = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(kind.name)}</title>",
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto}"
        "label{display:block;margin:.4rem 0}</style>",
        f"</head><body><h1>{html.escape(kind.name)}</h1>",
        f'<form method="post" action="{html.escape(exchange.rstrip("/"))}/api.php">',
        *(
            f'  <input type="hidden" name="{html.escape(n)}" value="{html.escape(v)}">'
            for n, v in hidden.items()
        ),
        *(_input(f, f.required("full") is Need.YES) for f in shown),
    ]
    if {"TCPA_Consent", "TCPA_Language"} <= lead_table.by_name.keys():
        lines += [
            f'  <input type="hidden" name="TCPA_Language" value="{html.escape(TYPED_CONSENT)}">',
            '  <label><input type="checkbox" name="TCPA_Consent" value="Yes" required>'
            f" {html.escape(TYPED_CONSENT)}</label>",
        ]
    lines += ['  <button type="submit">Send</button>', "</form>", "</body></html>"]
    return "\n".join(lines) + "\n"


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


def demo_pages(
    key: str, products: Sequence[str], typed_keys: dict[str, str] | None = None
) -> dict[str, Page]:
    """/form for the vendor with `key`, posting to the exchange serving it, and /thanks; and
    /form?type=N for each other lead type N of `typed_keys` (TYPE -> a vendor's key)."""

    def form(url: str) -> tuple[str, bytes]:
        page = render(exchange="", key=key, thanks=url + THANKS_PATH, products=products)
        return HTML, page.encode()

    def typed_form(code: str, vendor_key: str) -> Page:
        def make(url: str) -> tuple[str, bytes]:
            page = typed(
                TABLES[code], exchange="", key=vendor_key, thanks=url + THANKS_PATH, source=url
            )
            return HTML, page.encode()

        return make

    pages: dict[str, Page] = {
        FORM_PATH: form,
        THANKS_PATH: lambda url: (HTML, thanks_page().encode()),
    }
    for code, vendor_key in (typed_keys or {}).items():
        pages[f"{FORM_PATH}?type={code}"] = typed_form(code, vendor_key)
    return pages


def form_command(args: argparse.Namespace) -> None:
    """Write the form for a deployed exchange."""
    try:
        if args.type != LEAD_TYPE:
            page = typed(
                TABLES[args.type],
                exchange=args.url,
                key=args.key,
                thanks=args.thanks,
                source=args.src,
            )
            _written(page, args.output)
            return
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
    _written(page, args.output)


def _written(page: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(page)
    else:
        output.write_text(page, encoding="utf-8")


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
    made.add_argument(
        "--type",
        choices=list(TABLES),
        default=LEAD_TYPE,
        help="the lead type (default 7: Home Improvement's form; another: a plain form of its"
        " fields)",
    )
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

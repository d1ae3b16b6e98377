"""The `pingpost` command: run the exchange locally and load vendors and partners."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from pingpost.fields import LEAD_TYPE, PRODUCTS, TABLES, LeadType, markdown
from pingpost_local import client_commands, form, partner_commands, seed, vendor_commands


def _seed_file(path: Path) -> seed.Seed:
    try:
        return seed.load(path)
    except (OSError, ValueError, ValidationError) as error:
        raise SystemExit(f"pingpost: cannot read seed file {path}: {error}") from None


# Where demo/seed.json's partners deliver: the demo partner, wherever `serve` started it; and
# where its buyers that bid are asked and posted: the demo bidders, in their order.
DEMO_PARTNER_ORIGIN = "http://127.0.0.1:9000"
DEMO_BIDDER_ORIGINS = ("http://127.0.0.1:9101", "http://127.0.0.1:9102")


def _moved(url: str, origins: dict[str, str]) -> str:
    for origin, running in origins.items():
        if url.startswith(origin + "/"):
            return running + url[len(origin) :]
    return url


def _to_demo_partner(document: seed.Seed, url: str | None, bidders: str = "") -> seed.Seed:
    """The seed with requests to DEMO_PARTNER_ORIGIN sent to the running demo partner, and
    those to DEMO_BIDDER_ORIGINS to the running demo bidders (`bidders`: their URLs)."""
    origins = dict(zip(DEMO_BIDDER_ORIGINS, bidders.split(), strict=False))
    if url:
        origins[DEMO_PARTNER_ORIGIN] = url
    moved = document.model_copy(deep=True)
    for partner in moved.partners:
        partner.delivery.url = _moved(partner.delivery.url, origins)
        for endpoint in (partner.bid, partner.post):
            if endpoint is not None:
                endpoint.url = _moved(endpoint.url, origins)
    return moved


def _demo_key(document: seed.Seed) -> str | None:
    return document.vendors[0].key if document.vendors else None


def _demo_form(document: seed.Seed | None) -> dict[str, form.Page]:
    """/form as the seed's first vendor, offering the products its partners name; /form?type=N
    for each other lead type, as the seed's first vendor that sends only that type."""
    key = _demo_key(document) if document else None
    if document is None or key is None:
        return {}
    named = [p for partner in document.partners for p in partner.filters.products]
    typed: dict[str, str] = {}
    for vendor in document.vendors:
        sends = vendor.model_dump().get("lead_types") or []
        if len(sends) == 1 and sends[0] != LEAD_TYPE:
            typed.setdefault(sends[0], vendor.key)
    return form.demo_pages(key, list(dict.fromkeys(named)) or list(PRODUCTS), typed)


def _banner(url: str, key: str | None) -> None:
    print()
    if key is None:
        print("No vendor was seeded: add one with `pingpost seed FILE`.")
        return
    print(f"Demo vendor Key: {key}")
    print("Try a ping (expect <status>Matched</status>):")
    print(
        f"  curl '{url}/api.php?Key={key}&API_Action=pingPostLead&Mode=ping&TYPE=7"
        "&SRC=test&Zip=60610&Home_Improvement_Product=Roofing%20-%20Metal&Score=12&Skip_XSL=1'"
    )
    sys.stdout.flush()


def _cors_origin(text: str) -> str:
    """A --cors-origin value: http(s)://host[:port], no path, never '*'."""
    from pingpost_local.cors import CorsError, parse_origin

    try:
        return parse_origin(text)
    except CorsError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def serve(args: argparse.Namespace) -> None:
    """Start the whole exchange on 127.0.0.1 (an embedded AWS endpoint unless one is set)."""
    from pingpost_local.cors import CorsError
    from pingpost_local.server import serve as run  # needs the development extras

    _lead_types()
    document = _seed_file(args.seed) if args.seed else None

    def load() -> None:
        # The template's environment is exported now: read the settings again.
        from pingpost.config import settings

        settings.cache_clear()
        if document is not None:
            running = os.environ.get("DEMO_PARTNER_URL")
            seed.apply(_to_demo_partner(document, running, os.environ.get("DEMO_BIDDER_URLS", "")))

    key = _demo_key(document) if document else None
    try:
        run(
            args.port,
            args.template,
            seed=load,
            on_ready=lambda url: _banner(url, key),
            retry_seconds=args.retry_seconds,
            schedule_seconds=args.schedule_seconds,
            demo_partner_port=None if args.partner_port < 0 else args.partner_port,
            demo_partner_failure_rate=args.partner_failure_rate,
            demo_partner_latency=args.partner_latency,
            cors_origins=args.cors_origin,
            pages=_demo_form(document),
        )
    except CorsError as error:
        raise SystemExit(f"pingpost: {error}") from None


def seed_command(args: argparse.Namespace) -> None:
    """Create or replace the seed file's vendors and partners."""
    count_vendors, count_partners = seed.apply(_seed_file(args.file))
    print(f"seeded {count_vendors} vendors and {count_partners} partners")


def lead_show(args: argparse.Namespace) -> None:
    """Print a lead, its timeline, its sales and the decision on every partner considered."""
    from pingpost.store import leads, partners
    from pingpost_local.explain import lead_report

    lead = leads.get(args.lead_id)
    if lead is None:
        raise SystemExit(f"pingpost: no lead {args.lead_id}")
    known = {p.id: p for p in partners.all_partners()}
    print(lead_report(lead, known, personal=args.pii), end="")


def deliveries_retry(args: argparse.Namespace) -> None:
    """Do by hand what the scheduled retry does: sweep the outbox, redrive or park dead letters."""
    from pingpost import redrive

    report = redrive.run(args.seconds)
    print(
        f"redriven {report.redriven}, parked {report.parked}, swept {report.swept},"
        f" unreadable {report.unreadable}"
    )


def deliveries_failed(args: argparse.Namespace) -> None:
    """List the parked deliveries: sales no partner answer accepted after the last attempt."""
    from pingpost.store import deliveries

    parked = deliveries.failed()
    if not parked:
        print("no failed deliveries")
        return
    for lead_id, partner_id, record in parked:
        attempts = record.get("attempts", 0)
        print(
            f"lead {lead_id}  partner {partner_id}  attempts {attempts}  {record.get('detail', '')}"
        )


def fields_command(args: argparse.Namespace) -> None:
    """Print a lead type's field table as Markdown (docs/leadtypes/<its name>.md is this)."""
    print(markdown(TABLES[args.type]), end="")


def _lead_types() -> list[LeadType]:
    """Every lead type file, checked whole (a function reads the layer's own when first needed:
    the layer's build and this check refuse a broken one); exits naming what is wrong."""
    from pingpost.fields import RESERVED
    from pingpost.leadtypes import LeadTypeError, shipped

    try:
        return shipped(RESERVED)
    except LeadTypeError as error:
        raise SystemExit(f"pingpost: {error}") from None


def leadtypes_list(args: argparse.Namespace) -> None:
    """Print the lead types the exchange ships: TYPE, name, fields."""
    for lead_type in _lead_types():
        print(f"{lead_type.type:>2}  {lead_type.name}  ({len(lead_type.fields)} fields)")


def leadtypes_check(args: argparse.Namespace) -> None:
    """Check a lead type file as the exchange would load it; say what is wrong."""
    from pingpost.fields import RESERVED
    from pingpost.leadtypes import LeadTypeError, load

    try:
        lead_type = load(args.file, RESERVED)
    except LeadTypeError as error:
        raise SystemExit(f"pingpost: {error}") from None
    print(f"{args.file}: TYPE {lead_type.type}, {lead_type.name}, {len(lead_type.fields)} fields")


def openapi_command(args: argparse.Namespace) -> None:
    """Print the OpenAPI document of the template's HTTP API (openapi.yaml is this)."""
    from pingpost_local.openapi import openapi_yaml
    from pingpost_local.template import load_template

    print(openapi_yaml(load_template(args.template)), end="")


def parser() -> argparse.ArgumentParser:
    """The `pingpost` command line."""
    parser = argparse.ArgumentParser(prog="pingpost", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="run the exchange locally on 127.0.0.1")
    run.add_argument("--port", type=int, default=3000, help="HTTP port (default 3000; 0 = any)")
    run.add_argument("--seed", type=Path, help="seed file of vendors and partners to load")
    run.add_argument(
        "--template", type=Path, default=Path("template.yaml"), help="the SAM template to run"
    )
    run.add_argument(
        "--retry-seconds",
        type=float,
        default=5.0,
        help="a failed delivery is retried after this long locally (AWS: the queue's timeout)",
    )
    run.add_argument(
        "--schedule-seconds",
        type=float,
        default=30.0,
        help="the retry function runs this often locally (AWS: every 5 minutes)",
    )
    run.add_argument(
        "--partner-port",
        type=int,
        default=0,
        help=(
            "port of the demo partner (0: a free one, printed when it starts; -1: none); seed"
            f" deliveries to {DEMO_PARTNER_ORIGIN} go to it"
        ),
    )
    run.add_argument(
        "--partner-failure-rate",
        type=float,
        default=0.0,
        help="share of deliveries the demo partner refuses (0..1)",
    )
    run.add_argument(
        "--partner-latency",
        type=float,
        default=0.0,
        help="seconds the demo partner takes to answer",
    )
    run.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        type=_cors_origin,
        metavar="ORIGIN",
        help="let browser pages on ORIGIN (http(s)://host[:port], never *) call the API; "
        "added to the template's CorsOrigins, repeatable (the exchange's own origin always is)",
    )
    run.set_defaults(handler=serve)

    load = commands.add_parser("seed", help="upsert vendors and partners from a JSON file")
    load.add_argument("file", type=Path)
    load.set_defaults(handler=seed_command)

    lead = commands.add_parser("lead", help="look at leads").add_subparsers(
        dest="what", required=True
    )
    show = lead.add_parser("show", help="a lead, its timeline, sales and decisions")
    show.add_argument("lead_id", type=int)
    show.add_argument("--pii", action="store_true", help="show personal data in clear")
    show.set_defaults(handler=lead_show)

    partner_commands.add_commands(commands)

    vendor_commands.add_commands(commands)
    from pingpost_local.report import add_command as add_report  # pingpost report

    add_report(commands)

    form.add_command(commands)

    client_commands.add_commands(commands)

    delivery = commands.add_parser("deliveries", help="deliveries to partners")
    what = delivery.add_subparsers(dest="what", required=True)
    retry = what.add_parser("retry", help="redrive the dead-letter queue and sweep the outbox now")
    retry.add_argument("--seconds", type=float, default=100, help="time budget (default 100)")
    retry.set_defaults(handler=deliveries_retry)
    what.add_parser("failed", help="list parked deliveries").set_defaults(handler=deliveries_failed)

    table = commands.add_parser("fields", help="print a lead type's field table (Markdown)")
    table.add_argument(
        "--type", choices=list(TABLES), default=LEAD_TYPE, help="its TYPE (default: 7)"
    )
    table.set_defaults(handler=fields_command)
    types = commands.add_parser("leadtypes", help="the lead types (one JSON file each)")
    kinds = types.add_subparsers(dest="what", required=True)
    kinds.add_parser("list", help="print the lead types shipped").set_defaults(
        handler=leadtypes_list
    )
    check = kinds.add_parser("check", help="check a lead type file before it is deployed")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=leadtypes_check)
    described = commands.add_parser("openapi", help="print the API's OpenAPI document (YAML)")
    described.add_argument("--template", type=Path, default=Path("template.yaml"))
    described.set_defaults(handler=openapi_command)

    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `pingpost` console script."""
    args = parser().parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()

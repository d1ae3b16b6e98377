"""The `pingpost` command: run the exchange locally and load vendors and partners."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from pingpost import seed
from pingpost.fields import markdown


def _seed_file(path: Path) -> seed.Seed:
    try:
        return seed.load(path)
    except (OSError, ValueError, ValidationError) as error:
        raise SystemExit(f"pingpost: cannot read seed file {path}: {error}") from None


def _demo_key(document: seed.Seed) -> str | None:
    return document.vendors[0].key if document.vendors else None


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


def serve(args: argparse.Namespace) -> None:
    """Start the whole exchange on 127.0.0.1 (an embedded AWS endpoint unless one is set)."""
    from pingpost.local.server import serve as run  # needs the development extras

    document = _seed_file(args.seed) if args.seed else None

    def load() -> None:
        if document is not None:
            seed.apply(document)

    key = _demo_key(document) if document else None
    run(args.port, args.template, seed=load, on_ready=lambda url: _banner(url, key))


def seed_command(args: argparse.Namespace) -> None:
    """Create or replace the seed file's vendors and partners."""
    count_vendors, count_partners = seed.apply(_seed_file(args.file))
    print(f"seeded {count_vendors} vendors and {count_partners} partners")


def fields_command(args: argparse.Namespace) -> None:
    """Print the field table as Markdown."""
    print(markdown(), end="")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `pingpost` console script."""
    parser = argparse.ArgumentParser(prog="pingpost", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("serve", help="run the exchange locally on 127.0.0.1")
    run.add_argument("--port", type=int, default=3000, help="HTTP port (default 3000; 0 = any)")
    run.add_argument("--seed", type=Path, help="seed file of vendors and partners to load")
    run.add_argument(
        "--template", type=Path, default=Path("template.yaml"), help="the SAM template to run"
    )
    run.set_defaults(handler=serve)

    load = commands.add_parser("seed", help="upsert vendors and partners from a JSON file")
    load.add_argument("file", type=Path)
    load.set_defaults(handler=seed_command)

    table = commands.add_parser("fields", help="print the pingPostLead field table (Markdown)")
    table.set_defaults(handler=fields_command)

    args = parser.parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()

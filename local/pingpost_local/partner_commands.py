"""`pingpost partners ...`: list, add, update, pause and resume buyers, checked by the seed's model.

Changes are written only over the partner as it was read: a write that came between (another
operator's) makes the command stop and say so, instead of one of the two being lost.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pingpost.models import Partner


def partners_list(args: argparse.Namespace) -> None:
    """Print every partner: price, filters and caps."""
    from pingpost.store import partners
    from pingpost_local.explain import partner_table

    print(partner_table(partners.all_partners()), end="")


def partners_add(args: argparse.Namespace) -> None:
    """Create a partner from a JSON document (a file, or - for standard input)."""
    from pingpost.store import partners

    partner = _valid(_json(args.file))
    try:
        partners.put(partner, new=True)
    except partners.PartnerChanged:
        raise SystemExit(f"pingpost: partner {partner.id} exists already") from None
    print(f"added partner {partner.id}")


def partners_reindex(args: argparse.Namespace) -> None:
    """File every partner in the index leads are matched by (a table written before it)."""
    from pingpost.store import partners

    items = partners.reindex()
    print(f"indexed {len(partners.all_partners())} partners in {items} index items")


def partners_update(args: argparse.Namespace) -> None:
    """Change some settings of a partner: a JSON object merged into the partner as stored."""
    changes = json.loads(args.changes) if args.changes != "-" else json.load(sys.stdin)
    if not isinstance(changes, dict):
        raise SystemExit('pingpost: the changes are a JSON object, e.g. {"price": 25}')
    if changes.get("id", args.partner_id) != args.partner_id:
        raise SystemExit("pingpost: a partner's id cannot change")
    _change(args.partner_id, lambda stored: _merged(stored, changes), "updated")


def partners_pause(args: argparse.Namespace) -> None:
    """Stop a partner buying (it stays, and its sales are still delivered)."""
    _change(args.partner_id, lambda stored: stored | {"active": False}, "paused")


def partners_resume(args: argparse.Namespace) -> None:
    """Let a paused partner buy again."""
    _change(args.partner_id, lambda stored: stored | {"active": True}, "resumed")


def partners_rotate_key(args: argparse.Namespace) -> None:
    """Give a partner a new return key (its last one stops working), printed this once."""
    import secrets

    from pingpost.models import key_hash

    key = f"{args.partner_id}.{secrets.token_urlsafe(32)}"
    hashed = key_hash(key)
    _change(args.partner_id, lambda stored: stored | {"return_key_hash": hashed}, "new key for")
    print(f"Return key (shown once; POST /returns with Authorization: Bearer KEY): {key}")


def returns_add(args: argparse.Namespace) -> None:
    """Return a lead for a partner (an operator's hand: its window and rules as for a return
    the partner makes)."""
    from pingpost import returns
    from pingpost.errors import PingPostError
    from pingpost.store import partners

    partner = partners.by_id(args.partner_id)
    if partner is None:
        raise SystemExit(f"pingpost: no partner {args.partner_id}")
    try:
        done = returns.give_back(partner, args.lead_id, args.reason)
    except PingPostError as error:
        raise SystemExit(f"pingpost: {error.message}") from None
    print(f"lead {args.lead_id} {done} by partner {args.partner_id}")


def _change(partner_id: int, change: Any, done: str) -> None:
    from pingpost.store import partners

    found = partners.read(partner_id)
    if found is None:
        raise SystemExit(f"pingpost: no partner {partner_id}")
    partner, written = found
    stored = partner.model_dump(mode="json")
    changed = _valid(change(stored))
    if changed == partner:
        print(f"partner {partner_id} unchanged")
        return
    try:
        partners.put(changed, written=written)
    except partners.PartnerChanged:
        raise SystemExit(
            f"pingpost: partner {partner_id} was changed meanwhile; nothing written, try again"
        ) from None
    print(f"{done} partner {partner_id}")


def _merged(stored: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`stored` with `changes`: objects merged key by key, anything else replaced."""
    merged = dict(stored)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _json(file: str) -> Any:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, ValueError) as error:
        raise SystemExit(f"pingpost: {file}: {error}") from None


def _valid(document: Any) -> Partner:
    try:
        return Partner.model_validate(document)
    except ValidationError as error:
        raise SystemExit(f"pingpost: {error}") from None


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `partners` command and its subcommands."""
    partner = commands.add_parser("partners", help="manage partners (the buyers)")
    what = partner.add_subparsers(dest="what", required=True)
    what.add_parser("list", help="every partner with its price, filters and caps").set_defaults(
        handler=partners_list
    )
    add = what.add_parser("add", help="create a partner from a JSON document, as in a seed file")
    add.add_argument("file", help="the JSON file, or - for standard input")
    add.set_defaults(handler=partners_add)
    update = what.add_parser("update", help="change settings: a JSON object merged into it")
    update.add_argument("partner_id", type=int)
    update.add_argument("changes", help='e.g. \'{"price": 25, "filters": {"states": ["IL"]}}\'')
    update.set_defaults(handler=partners_update)
    what.add_parser(
        "reindex", help="file every partner in the index leads meet them by (an older table)"
    ).set_defaults(handler=partners_reindex)
    for name, handler, text in (
        ("pause", partners_pause, "stop a partner buying leads"),
        ("resume", partners_resume, "let a paused partner buy again"),
        ("rotate-key", partners_rotate_key, "a new return key for the partner, printed once"),
    ):
        command = what.add_parser(name, help=text)
        command.add_argument("partner_id", type=int)
        command.set_defaults(handler=handler)
    from pingpost.returns import MOST_REASON

    returned = commands.add_parser("returns", help="leads partners give back")
    kinds = returned.add_subparsers(dest="what", required=True)
    add_return = kinds.add_parser("add", help="return a lead a partner bought, within its window")
    add_return.add_argument("lead_id", type=int)
    add_return.add_argument("partner_id", type=int)
    add_return.add_argument(
        "--reason", required=True, help=f"why (at most {MOST_REASON} characters)"
    )
    add_return.set_defaults(handler=returns_add)

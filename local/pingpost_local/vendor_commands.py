"""`pingpost vendors ...`: add, list and change publishers, rotate their Keys, disable them.

A Key is shown once, when it is made; only its hash is stored. A rotation gives a vendor a
second Key that works beside the first until `rotate-key --finish` keeps only the new one.
Containers keep a vendor up to `cache_seconds` (30): a change reaches every one within that.
"""

from __future__ import annotations

import argparse
import secrets
from decimal import Decimal

from pydantic import ValidationError

from pingpost.models import Vendor, key_hash


def vendors_add(args: argparse.Namespace) -> None:
    """Create a vendor with a new random Key, printed once: only its hash is stored."""
    from pingpost.store import vendors

    if any(v.id == args.vendor_id for v in vendors.all_vendors()):
        raise SystemExit(f"pingpost: vendor {args.vendor_id} exists already")
    key = secrets.token_urlsafe(32)
    try:
        vendor = Vendor(
            id=args.vendor_id,
            name=args.name or args.vendor_id,
            key_hash=key_hash(key),
            cost=args.cost,
            dynamic_pricing=args.dynamic_pricing,
            margin=args.margin,
            margin_type=args.margin_type,
            allowed_times_sold=args.allowed_times_sold,
            response_style=args.response_style,
            redirect_hosts=args.redirect_host,
            http_errors=args.http_errors,
            lead_types=args.lead_type or None,
        )
    except ValidationError as error:
        raise SystemExit(f"pingpost: {error}") from None
    vendors.put(vendor)
    print(f"vendor {vendor.id} created. Its Key (shown only now, store it safely):\n{key}")


def vendors_list(args: argparse.Namespace) -> None:
    """Print every vendor: pricing, how its answers read, where its forms may send browsers."""
    from pingpost.store import vendors
    from pingpost_local.explain import vendor_table

    print(vendor_table(vendors.all_vendors()), end="")


def vendors_redirect_hosts(args: argparse.Namespace) -> None:
    """Replace the hosts a vendor's web forms may send browsers back to (none: no redirects)."""
    from pingpost.store import vendors

    found = _one(args.vendor_id)
    try:
        vendor = found.model_validate(found.model_dump() | {"redirect_hosts": args.hosts})
    except ValidationError as error:
        raise SystemExit(f"pingpost: {error}") from None
    vendors.put(vendor)
    print(f"vendor {vendor.id} redirect hosts: {', '.join(vendor.redirect_hosts) or '(none)'}")


def vendors_rotate_key(args: argparse.Namespace) -> None:
    """Start a rotation (a new Key, printed once, beside the old), or finish it."""
    from pingpost.store import vendors

    vendor = _one(args.vendor_id)
    if args.finish:
        if vendor.next_key_hash is None:
            raise SystemExit(f"pingpost: vendor {vendor.id} has no rotation under way")
        vendors.put(
            vendor.model_copy(update={"key_hash": vendor.next_key_hash, "next_key_hash": None})
        )
        print(f"vendor {vendor.id}: only the new Key works now")
        return
    if vendor.next_key_hash is not None:
        raise SystemExit(
            f"pingpost: vendor {vendor.id} has a rotation under way; finish it first (--finish)"
        )
    key = secrets.token_urlsafe(32)
    vendors.put(vendor.model_copy(update={"next_key_hash": key_hash(key)}))
    print(
        f"vendor {vendor.id}: a new Key works beside the old one until `pingpost vendors"
        f" rotate-key {vendor.id} --finish`. The new Key (shown only now, store it safely):\n{key}"
    )


def vendors_disable(args: argparse.Namespace) -> None:
    """Refuse the vendor's requests (403) until it is enabled again."""
    _set_active(args.vendor_id, False)


def vendors_enable(args: argparse.Namespace) -> None:
    """Accept a disabled vendor's requests again."""
    _set_active(args.vendor_id, True)


def _set_active(vendor_id: str, active: bool) -> None:
    from pingpost.store import vendors

    vendor = _one(vendor_id)
    if vendor.active != active:
        vendors.put(vendor.model_copy(update={"active": active}))
    print(f"vendor {vendor.id} {'enabled' if active else 'disabled'}")


def _one(vendor_id: str) -> Vendor:
    from pingpost.store import vendors

    found = [v for v in vendors.all_vendors() if v.id == vendor_id]
    if not found:
        raise SystemExit(f"pingpost: no vendor {vendor_id}")
    return found[0]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `vendors` command and its subcommands."""
    vendor = commands.add_parser("vendors", help="manage vendors")
    vendor_commands = vendor.add_subparsers(dest="what", required=True)
    add = vendor_commands.add_parser("add", help="create a vendor and print its new Key once")
    add.add_argument("vendor_id")
    add.add_argument("--name", default="")
    add.add_argument("--cost", type=Decimal, default=Decimal(0), help="lead cost paid per lead")
    add.add_argument("--dynamic-pricing", action="store_true")
    add.add_argument("--margin", type=Decimal, default=Decimal(0))
    add.add_argument("--margin-type", choices=["amount", "percent"], default="amount")
    add.add_argument("--allowed-times-sold", type=int, default=1)
    add.add_argument(
        "--response-style", choices=["short", "success_error", "full"], default="short"
    )
    add.add_argument(
        "--redirect-host",
        action="append",
        default=[],
        help="a host its web forms may send browsers back to (repeatable)",
    )
    add.add_argument(
        "--lead-type",
        action="append",
        metavar="TYPE",
        help="a lead type it may send (repeatable; default: every type)",
    )
    add.add_argument(
        "--no-http-errors",
        dest="http_errors",
        action="store_false",
        help="answer errors with HTTP 200",
    )
    add.set_defaults(handler=vendors_add)
    listing = vendor_commands.add_parser("list", help="every vendor and its settings")
    listing.set_defaults(handler=vendors_list)
    hosts = vendor_commands.add_parser(
        "redirect-hosts", help="replace the hosts a vendor's web forms may send browsers to"
    )
    hosts.add_argument("vendor_id")
    hosts.add_argument("hosts", nargs="*", metavar="HOST")
    hosts.set_defaults(handler=vendors_redirect_hosts)
    rotate = vendor_commands.add_parser(
        "rotate-key",
        help="give a vendor a new Key beside its Key (both work); --finish: only the new one",
    )
    rotate.add_argument("vendor_id")
    rotate.add_argument(
        "--finish", action="store_true", help="end the rotation: the old Key stops working"
    )
    rotate.set_defaults(handler=vendors_rotate_key)
    for name, handler, text in (
        ("disable", vendors_disable, "refuse the vendor's requests (403) until enabled"),
        ("enable", vendors_enable, "accept a disabled vendor's requests again"),
    ):
        command = vendor_commands.add_parser(name, help=text)
        command.add_argument("vendor_id")
        command.set_defaults(handler=handler)

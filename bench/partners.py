"""What keeping the partners costs a container: the first read, and each refresh after.

    .venv/bin/python bench/partners.py --sizes 10000 100000 --changed 10

Two parts. **Through the exchange's code** (pingpost.store.partners on an embedded AWS
endpoint, its calls counted by pingpost_local.meter, read units as DynamoDB computes them from
the item sizes), with `--loaded` partners in the table: a new container's first read (the
scan), a refresh when nothing changed (the version only), and a refresh after `--changed`
partners were written (the version, then those partners, read by id). A
refresh's calls and units do not depend on how many partners there are. **At scale**, for each
of `--sizes` (bench/matching.py's random partners, as stored): the read units of the first read
(a strongly consistent scan of every item; every refresh scanned them all, eventually
consistent, at half that, before the version item), and the milliseconds this process
spends making the copy from the stored items (validating and indexing every partner) and
applying `--changed` partners to it (the index is built again), and the memory the copy holds
(tracemalloc, measured apart). The embedded endpoint is too
slow at scans to time them (2,000 partners take it 20 s): its times are not AWS's, so the
milliseconds here are this code's only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pingpost.models import Partner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def _endpoint() -> Any:
    import boto3

    from pingpost_local.embedded_aws import start_aws_endpoint
    from pingpost_local.resources import create_resources
    from pingpost_local.template import load_template, parameter_values

    server, url = start_aws_endpoint()
    os.environ.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 (the embedded endpoint takes any)
        AWS_DEFAULT_REGION="us-east-1",
        CACHE_SECONDS="0",  # every use of the copy looks at the version: one refresh each
    )
    template = load_template(ROOT / "template.yaml")
    physical = create_resources(
        template, boto3.client("dynamodb"), boto3.client("sqs"), parameter_values(template)
    )
    os.environ["PARTNERS_TABLE"] = physical["PartnersTable"]
    os.environ["COUNTERS_TABLE"] = physical["CountersTable"]
    return server


def _stored(count: int) -> list[dict[str, Any]]:
    """`count` partners as the table stores them (versions 1..count)."""
    from matching import random_partners

    from pingpost.store import partners, to_item

    out = []
    for change, partner in enumerate(random_partners(count), start=1):
        item = partners.compact(partner.model_dump(mode="python"))
        item["delivery"].pop("headers")
        item["partner_id"] = item.pop("id")
        item["change"] = change
        out.append(to_item(item))
    return out


def _load(count: int) -> None:
    """`count` partners written straight to the table, with the version item."""
    import boto3

    from pingpost.store import partners

    client = boto3.client("dynamodb")
    table = os.environ["PARTNERS_TABLE"]
    items = _stored(count)
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        client.batch_write_item(RequestItems={table: batch})
    client.put_item(
        TableName=os.environ["COUNTERS_TABLE"],
        Item={"counter": {"S": partners.VERSION}, "version": {"N": str(count)}},
    )


def _timed(meter: Any, action: Any) -> tuple[float, dict[str, int]]:
    with meter.metering() as calls:
        action()
    return calls.read_units, dict(calls.count())


def refreshes(loaded: int, changed: int) -> list[tuple[str, float, dict[str, int]]]:
    """(what, read units, calls) of the first read and of each kind of refresh."""
    import boto3

    from pingpost.config import settings
    from pingpost.store import dynamodb, partners
    from pingpost_local.meter import Meter

    settings.cache_clear()
    server = _endpoint()
    try:
        _load(loaded)
        meter = Meter([dynamodb()], boto3.client("dynamodb"))
        partners.forget()
        rows = [(f"first read ({loaded:,} partners)", *_timed(meter, partners.current))]
        rows.append(("refresh, nothing changed", *_timed(meter, partners.current)))
        some = sorted(partners.current().partners.values(), key=lambda p: p.id)[:changed]
        for partner in some:
            partners.put(partner.model_copy(update={"price": partner.price + 1}))
        rows.append((f"refresh, {changed} changed", *_timed(meter, partners.current)))
        now = {p.id: p for p in partners.current().partners.values()}
        assert all(now[p.id].price == p.price + 1 for p in some)
        return rows
    finally:
        server.stop()


def at_scale(count: int, changed: int) -> tuple[float, float, float, float]:
    """(read units of a scan of every partner, ms to make the copy, ms to apply `changed`,
    MB the copy holds)."""
    import math
    import tracemalloc

    from pingpost.matching import PartnerSet
    from pingpost.store import partners
    from pingpost_local.meter import item_size

    def copy_of(stored: list[dict[str, Any]]) -> tuple[dict[int, Partner], PartnerSet]:
        """What a container makes of the partners it reads: each parsed, the active indexed."""
        every = {p.id: p for p in map(partners.stored, stored)}
        return every, PartnerSet(p for p in every.values() if p.active)

    items = _stored(count)
    # A strongly consistent scan is billed by the data it reads, 4 KB a unit.
    units = float(math.ceil(sum(item_size(i) for i in items) / 4096))
    started = time.perf_counter()
    every, _ = copy_of(items)
    made = time.perf_counter() - started
    new = [partners.stored(i) for i in items[:changed]]
    started = time.perf_counter()
    changed_copy = every | {p.id: p for p in new}
    PartnerSet(p for p in changed_copy.values() if p.active)
    applied = time.perf_counter() - started
    del every, changed_copy
    tracemalloc.start()  # apart from the timing: it slows what it watches
    kept = copy_of(items)
    held = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    assert len(kept[0]) == count
    return units, made * 1000, applied * 1000, held


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--loaded", type=int, default=300)
    args = parser.parse_args(argv)
    print("| through the code | read units | calls |")
    print("|---|--:|---|")
    for name, units, calls in refreshes(args.loaded, args.changed):
        listed = ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
        print(f"| {name} | {units:,.1f} | {listed} |")
    print()
    print(
        f"| partners | read units of the first read | ms to make the copy"
        f" | ms to apply {args.changed} changed | MB the copy holds |"
    )
    print("|--:|--:|--:|--:|--:|")
    for count in args.sizes:
        units, made, applied, held = at_scale(count, args.changed)
        print(f"| {count:,} | {units:,.1f} | {made:,.0f} | {applied:,.0f} | {held:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What keeping the partners costs a container: the first lead, and each refresh after.

    .venv/bin/python bench/partners.py --sizes 10000 100000 --changed 10

A container holds only the partners of the leads it meets (pingpost.store.partners): a lead
reads its neighbourhood's index items and the partners they name. Two parts. **Through the
exchange's code** (on an embedded AWS endpoint, its calls counted by pingpost_local.meter, read
units as DynamoDB computes them from the item sizes), with `--loaded` partners in the table: a
new container's first lead, the same neighbourhood again when nothing changed (the version
only), another neighbourhood, a refresh after `--changed` partners were written (the version,
then those partners, read by id), and, as the baseline, a new container of the same table
before the index (a strongly consistent scan of every partner). **At scale**, for each of
`--sizes` (bench/matching.py's random partners, as stored, filed in the index as a write files
them), over `--leads` random leads: the partners a lead's neighbourhood names, the read units of
a new container's first lead (its index items and those partners) and the milliseconds this
process spends making its set from the stored items (each partner validated, the set indexed),
against the baseline of reading and making the whole copy, as every container did before the
index; and the memory held after meeting every lead against the whole copy's (tracemalloc,
measured apart). The embedded endpoint is too slow at scans to time them (2,000 partners take it
20 s): its times are not AWS's, so the milliseconds here are this code's only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

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
    for key, ids in _index(items).items():
        client.put_item(
            TableName=os.environ["COUNTERS_TABLE"],
            Item={"counter": {"S": key}, "ids": {"NS": [str(i) for i in sorted(ids)]}},
        )
    client.put_item(
        TableName=os.environ["COUNTERS_TABLE"],
        Item={
            "counter": {"S": partners.VERSION},
            "version": {"N": str(count)},
            "indexed": {"BOOL": True},
        },
    )


def _index(items: list[dict[str, Any]]) -> dict[str, set[int]]:
    """The index items of stored partners, as their writes file them."""
    from pingpost.store import partners

    filed: dict[str, set[int]] = {}
    for item in items:
        partner = partners.stored(item)
        for key in partners.placings(partner):
            filed.setdefault(key, set()).add(partner.id)
    return filed


def _lead(state: str, product: str) -> Any:
    from decimal import Decimal

    from pingpost.matching import Criteria

    return Criteria(state=state, zip=None, product=product, score=None, cost=Decimal(0))


def _timed(meter: Any, action: Any) -> tuple[float, dict[str, int]]:
    with meter.metering() as calls:
        action()
    return calls.read_units, dict(calls.count())


def refreshes(loaded: int, changed: int) -> list[tuple[str, float, dict[str, int]]]:
    """(what, read units, calls) of a new container's first lead, of each kind of refresh, and
    of a new container of the table before the index."""
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
        first, other = _lead("CA", "Gutters"), _lead("TX", "Windows")
        rows = [
            (f"first lead ({loaded:,} partners)", *_timed(meter, lambda: partners.near(first))),
            (
                "the same neighbourhood, nothing changed",
                *_timed(meter, lambda: partners.near(first)),
            ),
            ("another neighbourhood", *_timed(meter, lambda: partners.near(other))),
        ]
        some = sorted(partners.near(first).all(), key=lambda p: p.id)[:changed]
        for partner in some:
            partners.put(partner.model_copy(update={"price": partner.price + 1}))
        rows.append((f"refresh, {len(some)} changed", *_timed(meter, lambda: partners.near(first))))
        now = {p.id: p for p in partners.near(first).all()}
        assert all(now[p.id].price == p.price + 1 for p in some)
        dynamodb().update_item(
            TableName=os.environ["COUNTERS_TABLE"],
            Key={"counter": {"S": partners.VERSION}},
            UpdateExpression="REMOVE #ix",
            ExpressionAttributeNames={"#ix": "indexed"},
        )
        partners.forget()
        rows.append(
            ("baseline: first lead, table read whole", *_timed(meter, lambda: partners.near(first)))
        )
        return rows
    finally:
        server.stop()


@dataclass
class Scale:
    """The measurements at one number of partners."""

    count: int
    met: list[int]  # partners each lead's neighbourhood names
    first_units: list[float]  # read units of a new container's first lead, per lead
    first_ms: list[float]  # ms making a new container's set for a lead, per lead
    whole_units: float  # a strongly consistent scan of every partner
    whole_ms: float  # ms making the whole copy
    held_mb: float  # what a container holds after meeting every lead
    whole_mb: float


def at_scale(count: int, leads: int) -> Scale:
    """A new container's first lead against the whole copy, at `count` partners."""
    import math
    import tracemalloc

    from matching import random_pings

    from pingpost.matching import PartnerSet
    from pingpost.store import partners
    from pingpost_local.meter import item_size

    items = _stored(count)
    by_id = {int(item["partner_id"]["N"]): item for item in items}
    index = _index(items)
    pings = [ping.lead for ping in random_pings(leads)]

    def units(found: list[dict[str, Any]]) -> float:
        # A strongly consistent read by key is billed 4 KB a unit, each item rounded up.
        return float(sum(math.ceil(item_size(i) / 4096) for i in found))

    def met(lead: Any) -> list[int]:
        return sorted(set().union(*(index.get(k, set()) for k in partners.neighbourhood(lead))))

    def first(lead: Any) -> PartnerSet:
        named = [by_id[i] for i in met(lead)]
        return PartnerSet(p for p in map(partners.stored, named) if p.active)

    def whole() -> PartnerSet:
        return PartnerSet(p for p in map(partners.stored, items) if p.active)

    first_ms = []
    for lead in pings:
        started = time.perf_counter()
        first(lead)
        first_ms.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    whole()
    whole_ms = (time.perf_counter() - started) * 1000

    def filed(key: str) -> dict[str, Any]:
        ids = sorted(index.get(key, ()))
        return {"counter": {"S": key}} | ({"ids": {"NS": [str(i) for i in ids]}} if ids else {})

    first_units = [
        units([by_id[i] for i in met(lead)] + [filed(k) for k in partners.neighbourhood(lead)])
        for lead in pings
    ]
    tracemalloc.start()  # apart from the timing: it slows what it watches
    held: dict[int, Any] = {}
    sets = [
        PartnerSet(held.setdefault(i, partners.stored(by_id[i])) for i in met(lead))
        for lead in pings
    ]
    held_mb = tracemalloc.get_traced_memory()[0] / 2**20
    del sets, held
    tracemalloc.stop()
    tracemalloc.start()
    kept = whole()
    whole_mb = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    assert len(kept) == sum(1 for i in items if i.get("active", {}).get("BOOL", True))
    del kept
    return Scale(
        count=count,
        met=[len(met(lead)) for lead in pings],
        first_units=first_units,
        first_ms=first_ms,
        whole_units=float(math.ceil(sum(item_size(i) for i in items) / 4096)),
        whole_ms=whole_ms,
        held_mb=held_mb,
        whole_mb=whole_mb,
    )


def main(argv: list[str] | None = None) -> int:
    import statistics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("--loaded", type=int, default=300)
    parser.add_argument("--leads", type=int, default=200)
    args = parser.parse_args(argv)
    print("| through the code | read units | calls |")
    print("|---|--:|---|")
    for name, units, calls in refreshes(args.loaded, args.changed):
        listed = ", ".join(f"{k} {v}" for k, v in sorted(calls.items()))
        print(f"| {name} | {units:,.1f} | {listed} |")
    print()
    print(
        f"| partners | partners a lead meets, median (max) | read units of a first lead, median"
        f" (whole copy) | ms making a first lead's set, median (whole copy) | ratio"
        f" | MB held after {args.leads} leads (whole copy) |"
    )
    print("|--:|--:|--:|--:|--:|--:|")
    for count in args.sizes:
        row = at_scale(count, args.leads)
        first = statistics.median(row.first_ms)
        print(
            f"| {count:,} | {statistics.median(row.met):,.0f} ({max(row.met):,})"
            f" | {statistics.median(row.first_units):,.0f} ({row.whole_units:,.0f})"
            f" | {first:,.1f} ({row.whole_ms:,.0f}) | {first / row.whole_ms:.4f}x"
            f" | {row.held_mb:,.1f} ({row.whole_mb:,.0f}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
